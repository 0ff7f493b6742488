package send_test

import (
	"context"
	"database/sql"
	"errors"
	"math/big"
	"sync/atomic"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"payflow/chain/evm/send"

	"payflow/chain/evm/evmtest"
)

// fixedNonces is a NonceAllocator that hands out nonce, or fails with fail
// before handing out anything. It stands for the allocator the speed work
// may bring: the signer must need nothing more than WithNonce.
type fixedNonces struct {
	db    *sql.DB
	nonce uint64
	fail  error
	calls atomic.Int32
}

func (a *fixedNonces) WithNonce(ctx context.Context, _ common.Address, use func(tx *sql.Tx, nonce uint64) error) error {
	a.calls.Add(1)
	if a.fail != nil {
		return a.fail
	}
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := use(tx, a.nonce); err != nil {
		return err
	}
	return tx.Commit()
}

// TestSignerTakesNoncesFromItsAllocator: the signer signs with the nonce its
// allocator hands out and stores nothing when the allocator fails; a replay
// asks the allocator nothing.
func TestSignerTakesNoncesFromItsAllocator(t *testing.T) {
	f := newChainFixture(t)
	alloc := &fixedNonces{db: f.DB, nonce: 5, fail: errors.New("lane unavailable")}
	s, err := send.NewSigner(send.SignerConfig{Chain: evmtest.ChainName, ChainID: big.NewInt(evmtest.SimChainID)}, f.BC.Store, alloc,
		f.BC.Fees, f.BC.Balances, f.Signer, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	req := f.Request("wf-alloc", 9)
	if _, err := s.SignTransfer(f.Ctx, req); !errors.Is(err, alloc.fail) {
		t.Fatalf("with the allocator failing: %v, want its error", err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); n != 0 {
		t.Fatalf("%d rows stored without a nonce", n)
	}
	if n := f.Signer.Calls.Load(); n != 0 {
		t.Fatalf("signer asked %d times without a nonce", n)
	}

	alloc.fail = nil
	stx, err := s.SignTransfer(f.Ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if stx.Nonce != 5 || decodeTx(t, stx.Raw).Nonce() != 5 || stx.Replayed {
		t.Fatalf("signed %+v, want nonce 5", stx)
	}
	again, err := s.SignTransfer(f.Ctx, req)
	if err != nil || !again.Replayed || again.Hash != stx.Hash {
		t.Fatalf("replay: %+v (%v)", again, err)
	}
	if n := alloc.calls.Load(); n != 2 {
		t.Fatalf("allocator asked %d times, want 2 (a replay asks nothing)", n)
	}
	alloc.nonce = 6
	top, err := s.SignNative(f.Ctx, send.NativeTransferRequest{WorkflowID: "wf-alloc", Step: "gas-topup", From: f.Sender,
		To: f.Broke, Wei: big.NewInt(1)})
	if err != nil || top.Nonce != 6 {
		t.Fatalf("native transfer: %+v (%v), want nonce 6", top, err)
	}
	if n := f.NextNonce(f.Sender); n != -1 {
		t.Fatalf("the nonces table has a lane at %d: the signer went around its allocator", n)
	}
}
