package evm_test

import (
	"errors"
	"math/big"
	"reflect"
	"testing"

	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"
	"payflow/chain/evm"

	"payflow/chain/evm/evmtest"
)

// TestIntentsHoldTheirNonce: an intent reads back as the transaction it was
// stored for, wei beyond 64 bits included; a second intent of the step, or
// another step's on the same nonce, is ErrAttemptExists; AtNonce reports a
// nonce held by an intent alone (open, then refused) and the nonce after it
// is counted by NoncesStored; Cancel stores the gap filler and marks the
// intent filled.
func TestIntentsHoldTheirNonce(t *testing.T) {
	f := newChainFixture(t)
	store, intents := f.BC.Store, evm.IntentsOf(f.BC.Store)
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	to := evmtest.Recipient
	inner := &types.DynamicFeeTx{Nonce: 7, GasTipCap: big.NewInt(1e9), GasFeeCap: huge, Gas: 60_000, To: &to,
		Value: huge, Data: []byte{0xa9, 0x05, 0x9c, 0xbb}}
	in := evm.IntentOf("wf-intent", "transfer", "res-1", f.Sender, inner)
	if _, err := intents.Get(f.Ctx, "wf-intent", "transfer"); !errors.Is(err, evm.ErrNoIntent) {
		t.Fatalf("Get before Insert: %v, want ErrNoIntent", err)
	}
	if err := intents.Insert(f.Ctx, nil, in); err != nil {
		t.Fatal(err)
	}
	got, err := intents.Get(f.Ctx, "wf-intent", "transfer")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != evm.IntentOpen || got.Reservation != "res-1" || !reflect.DeepEqual(got.Tx(), inner) {
		t.Fatalf("read back %+v as %+v, want %+v", got, got.Tx(), inner)
	}
	again := in
	again.Nonce = 8
	if err := intents.Insert(f.Ctx, nil, again); !errors.Is(err, evm.ErrAttemptExists) {
		t.Fatalf("the step's second intent: %v, want ErrAttemptExists", err)
	}
	other := in
	other.WorkflowID = "wf-other"
	if err := intents.Insert(f.Ctx, nil, other); !errors.Is(err, evm.ErrAttemptExists) {
		t.Fatalf("another step on the same nonce: %v, want ErrAttemptExists", err)
	}

	h, err := store.AtNonce(f.Ctx, f.Sender, 7)
	if err != nil || h.State != "intent" || h.WorkflowID != "wf-intent" || h.Raw != nil {
		t.Fatalf("AtNonce of an intent: %+v, %v", h, err)
	}
	if _, err := store.AtNonce(f.Ctx, f.Sender, 8); !errors.Is(err, chain.ErrNotSigned) {
		t.Fatalf("AtNonce of a free nonce: %v, want ErrNotSigned", err)
	}
	tx, err := f.DB.BeginTx(f.Ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	held, next, err := store.NoncesStored(f.Ctx, tx, f.Sender, 7)
	tx.Rollback()
	if err != nil || !held || next != 8 {
		t.Fatalf("NoncesStored: held %v, next %d (%v); want held, 8", held, next, err)
	}

	if err := intents.Refuse(f.Ctx, "wf-intent", "transfer", "no"); err != nil {
		t.Fatal(err)
	}
	if h, err := store.AtNonce(f.Ctx, f.Sender, 7); err != nil || h.State != "refused" {
		t.Fatalf("AtNonce of a refused intent: %+v, %v", h, err)
	}
	if _, err := store.Cancel(f.Ctx, "wf-intent", "transfer", f.Sender, f.SignedAt(7, 2e9)); err != nil {
		t.Fatal(err)
	}
	if got, err := intents.Get(f.Ctx, "wf-intent", "transfer"); err != nil || got.State != evm.IntentFilled || got.Reason != "no" {
		t.Fatalf("after Cancel: %+v, %v; want filled", got, err)
	}
	if h, err := store.AtNonce(f.Ctx, f.Sender, 7); err != nil || !h.Filler {
		t.Fatalf("AtNonce after Cancel: %+v, %v; want the filler", h, err)
	}
}

// TestBegunReadsTheLatestAttemptAndTheIntent: what a step stored towards
// its transfer, in one read: nothing for a new step, the intent alone, the
// intent with its latest signed attempt, a signed attempt without an
// intent (a step signed before intents were stored).
func TestBegunReadsTheLatestAttemptAndTheIntent(t *testing.T) {
	f := newChainFixture(t)
	store, intents := f.BC.Store, evm.IntentsOf(f.BC.Store)
	if _, signed, _, begun, err := intents.Begun(f.Ctx, "wf-begun", "transfer"); err != nil || signed || begun {
		t.Fatalf("a new step: signed %v, begun %v, %v", signed, begun, err)
	}
	to := evmtest.Recipient
	inner := &types.DynamicFeeTx{Nonce: 3, GasTipCap: big.NewInt(1e9), GasFeeCap: big.NewInt(2e9), Gas: 21_000, To: &to,
		Value: big.NewInt(1)}
	if err := intents.Insert(f.Ctx, nil, evm.IntentOf("wf-begun", "transfer", "res-b", f.Sender, inner)); err != nil {
		t.Fatal(err)
	}
	_, signed, in, begun, err := intents.Begun(f.Ctx, "wf-begun", "transfer")
	if err != nil || signed || !begun || in.Reservation != "res-b" || !reflect.DeepEqual(in.Tx(), inner) {
		t.Fatalf("the intent alone: signed %v, begun %v, %+v, %v", signed, begun, in, err)
	}
	want, err := intents.Get(f.Ctx, "wf-begun", "transfer")
	if err != nil || !reflect.DeepEqual(in, want) {
		t.Fatalf("Begun's intent %+v, Get's %+v (%v)", in, want, err)
	}
	for attempt, feeCap := range []int64{2e9, 3e9} {
		if _, err := store.Insert(f.Ctx, nil, "wf-begun", "transfer", attempt, f.Sender, f.SignedAt(3, feeCap)); err != nil {
			t.Fatal(err)
		}
	}
	stx, signed, _, begun, err := intents.Begun(f.Ctx, "wf-begun", "transfer")
	latest, serr := store.Stored(f.Ctx, "wf-begun", "transfer")
	if err != nil || serr != nil || !signed || !begun || stx.Attempt != 1 || !reflect.DeepEqual(stx, latest) {
		t.Fatalf("signed: %+v signed %v begun %v (%v), Stored %+v (%v)", stx, signed, begun, err, latest, serr)
	}
	if _, err := store.Insert(f.Ctx, nil, "wf-old", "transfer", 0, f.Sender, f.SignedAt(4, 2e9)); err != nil {
		t.Fatal(err)
	}
	if stx, signed, _, begun, err := intents.Begun(f.Ctx, "wf-old", "transfer"); err != nil || !signed || begun || stx.Nonce != 4 {
		t.Fatalf("signed without an intent: %+v signed %v begun %v (%v)", stx, signed, begun, err)
	}
}
