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
