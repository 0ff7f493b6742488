package send_test

import (
	"context"
	"errors"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/send"
	"payflow/custody/signerapi"

	"payflow/chain/evm/evmtest"
)

// Stuck transactions on the simulated backend (go-ethereum v1.17.8). The
// legacy pool admits any tip of at least its price limit, 1 wei
// (legacypool.DefaultConfig.PriceLimit); the miner only includes transactions
// whose effective tip reaches miner.Config.GasPrice, 1 mwei by default
// (txpool.PendingFilter.MinTip in miner.fillTransactions). A transfer signed
// with a 1 wei tip therefore sits in the pool through every Commit, like an
// underpriced transaction on a live network. Its replacement, priced from the
// node's suggestion (the oracle starts at the miner's 1 mwei), is mined on the
// next Commit, and the pool drops the original (same sender and nonce, both
// fees at least 10% higher).

func decodeTx(t testing.TB, raw []byte) *types.Transaction {
	t.Helper()
	var tx types.Transaction
	if err := tx.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	return &tx
}

// atLeastBumped reports whether got >= old × 1.125.
func atLeastBumped(got, old *big.Int) bool {
	return new(big.Int).Mul(got, big.NewInt(8)).Cmp(new(big.Int).Mul(old, big.NewInt(9))) >= 0
}

// TestReplaceStuckTransferSettlesOnce: a transfer stuck in the pool is
// replaced on its nonce with higher fees; only the replacement is mined, the
// token moves once, and the tracker confirms the replacement once and retires
// the original, leaving the workflow's hash on another nonce alone.
func TestReplaceStuckTransferSettlesOnce(t *testing.T) {
	f := newTrackerFixture(t)
	const wf, units = "wf-stuck", 4242
	req := f.Request(wf, units)
	stuck := f.SendStuck(req)
	// A later step of the same workflow on the next nonce, also stuck: it
	// shares the workflow but not the nonce, so the confirmation of the
	// replacement must not retire it.
	later := req
	later.Step, later.Units = "later", big.NewInt(1)
	other := f.SendStuck(later)
	if stuck.Nonce != 0 || other.Nonce != 1 {
		t.Fatalf("nonces %d and %d, want 0 and 1", stuck.Nonce, other.Nonce)
	}
	for _, h := range []common.Hash{stuck.Hash, other.Hash} {
		if err := evm.TrackTx(f.Ctx, f.DB, evmtest.ChainName, h, wf); err != nil {
			t.Fatal(err)
		}
	}
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), wf, stuck.Hash.Hex())

	repl, err := f.BC.Sender.Replace(f.Ctx, wf, req.Step, 1)
	if err != nil {
		t.Fatal(err)
	}
	if repl.Attempt != 1 || repl.Replayed || repl.Mined || repl.Nonce != stuck.Nonce || repl.From != f.Sender ||
		repl.Hash == stuck.Hash {
		t.Fatalf("replacement attempt=%d replayed=%v mined=%v nonce=%d from=%s hash=%s (stuck %s)", repl.Attempt,
			repl.Replayed, repl.Mined, repl.Nonce, repl.From.Hex(), repl.Hash.Hex(), stuck.Hash.Hex())
	}
	old, nw := decodeTx(t, stuck.Raw), decodeTx(t, repl.Raw)
	if nw.Nonce() != old.Nonce() || *nw.To() != *old.To() || string(nw.Data()) != string(old.Data()) ||
		nw.Gas() != old.Gas() || nw.Value().Cmp(old.Value()) != 0 {
		t.Fatal("the replacement is not the same transfer")
	}
	if !atLeastBumped(nw.GasTipCap(), old.GasTipCap()) || !atLeastBumped(nw.GasFeeCap(), old.GasFeeCap()) {
		t.Fatalf("fees tip %s→%s, cap %s→%s: not bumped by 12.5%%", old.GasTipCap(), nw.GasTipCap(),
			old.GasFeeCap(), nw.GasFeeCap())
	}
	if suggested, err := f.Client.SuggestGasTipCap(f.Ctx); err != nil || nw.GasTipCap().Cmp(suggested) < 0 {
		t.Fatalf("replacement tip %s below the suggested %s (%v)", nw.GasTipCap(), suggested, err)
	}
	if from, err := types.Sender(types.LatestSignerForChainID(big.NewInt(evmtest.SimChainID)), nw); err != nil || from != f.Sender {
		t.Fatalf("replacement signed by %s (%v)", from.Hex(), err)
	}
	attempts, err := f.BC.Store.Attempts(f.Ctx, wf, req.Step)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 2 || attempts[0].Hash != stuck.Hash || attempts[1].Hash != repl.Hash || attempts[1].Attempt != 1 {
		t.Fatalf("attempts %+v", attempts)
	}
	if stored, err := f.BC.Store.Stored(f.Ctx, wf, req.Step); err != nil || stored.Hash != repl.Hash {
		t.Fatalf("latest stored %s (%v), want the replacement", stored.Hash.Hex(), err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE tx_hash=? AND state='sent'", repl.Hash.Hex()); n != 1 {
		t.Fatal("the replacement is not marked sent")
	}
	if err := evm.TrackTx(f.Ctx, f.DB, evmtest.ChainName, repl.Hash, wf); err != nil {
		t.Fatal(err)
	}

	minedAt := f.Sim.Commit()
	r := f.RequireSuccess(repl.Hash)
	bn := r.BlockNumber.Uint64()
	if r.BlockHash != minedAt {
		t.Fatalf("replacement mined in %s, want %s", r.BlockHash.Hex(), minedAt.Hex())
	}
	if _, err := f.Client.TransactionReceipt(f.Ctx, stuck.Hash); !errors.Is(err, ethereum.NotFound) {
		t.Fatalf("the replaced transfer has a receipt too (%v)", err)
	}
	if got := f.TokenBalance(evmtest.Recipient); got.Int64() != units {
		t.Fatalf("recipient holds %s, want %d once", got, units)
	}
	if got, want := f.TokenBalance(f.Sender), new(big.Int).Sub(evmtest.SenderTokens, big.NewInt(units)); got.Cmp(want) != 0 {
		t.Fatalf("sender holds %s, want %s", got, want)
	}
	if n, err := f.Client.NonceAt(f.Ctx, f.Sender, nil); err != nil || n != 1 {
		t.Fatalf("sender nonce %d on chain (%v), want 1: the later step must still be stuck", n, err)
	}

	f.Check()
	evmtest.Expect(t, f.Rec.Take(), wf, repl.Hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	for range evmtest.Confirmations - 1 {
		f.Sim.Commit()
	}
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), wf, repl.Hash.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	for h, wantState := range map[common.Hash]string{repl.Hash: "confirmed", stuck.Hash: "done", other.Hash: "pending"} {
		if s := f.TrackedState(h, wf); s != wantState {
			t.Fatalf("%s is %q, want %q", h.Hex(), s, wantState)
		}
	}
	f.Sim.Commit()
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), wf, repl.Hash.Hex())

	// Replace and Send of the settled step now only report the mined attempt.
	again, err := f.BC.Sender.Replace(f.Ctx, wf, req.Step, 2)
	if err != nil || !again.Mined || again.Hash != repl.Hash {
		t.Fatalf("Replace after mining: %+v, %v", again, err)
	}
	f.sendUntilMined(t, wf, req.Step, repl.Hash)
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=? AND step=?", wf, req.Step); n != 2 {
		t.Fatalf("%d attempts stored, want 2", n)
	}
	if n := f.Signer.Calls.Load(); n != 3 {
		t.Fatalf("signer asked %d times, want 3 (two transfers, one replacement)", n)
	}
	asked := f.Signer.Asked()
	if last := asked[len(asked)-1]; last.WorkflowID != wf || last.Attempt != 1 || last.Reservation != "" {
		t.Fatalf("the replacement asked for %s attempt %d reservation %q, want %s attempt 1 and none", last.WorkflowID,
			last.Attempt, last.Reservation, wf)
	}
}

// TestReplaceMinedTransferSignsNothing: once the original is in a block,
// Replace returns it as mined and neither signs nor stores anything.
func TestReplaceMinedTransferSignsNothing(t *testing.T) {
	f := newChainFixture(t)
	req := f.Request("wf-mined", 7)
	stx := f.SignAndSend(req)
	f.Sim.Commit()
	f.RequireSuccess(stx.Hash)

	got, err := f.BC.Sender.Replace(f.Ctx, req.WorkflowID, req.Step, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Mined || got.Replayed || got.Hash != stx.Hash || got.Attempt != 0 || got.Nonce != stx.Nonce {
		t.Fatalf("Replace of a mined transfer returned %+v", got)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); n != 1 {
		t.Fatalf("%d signed_txs rows, want 1", n)
	}
	if n := f.Signer.Calls.Load(); n != 1 {
		t.Fatalf("signer asked %d times, want 1", n)
	}
	if _, err := f.BC.Sender.Replace(f.Ctx, "wf-never-signed", "transfer", 1); !errors.Is(err, chain.ErrNotSigned) {
		t.Fatalf("Replace of an unsigned step: %v, want ErrNotSigned", err)
	}
}

// barrierSigner holds every Sign call until n callers are inside it.
// Replace asks the signer after it has read the latest attempt, so all n
// callers race to store the same next attempt.
type barrierSigner struct {
	inner   send.TxSigner
	n       int32
	arrived atomic.Int32
	all     chan struct{}
}

func (k *barrierSigner) Sign(ctx context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error) {
	if k.arrived.Add(1) == k.n {
		close(k.all)
	}
	select {
	case <-k.all:
	case <-time.After(30 * time.Second): // a failure bound, not a timing assertion
		return signerapi.SignResponse{}, errors.New("not every racer reached the signer")
	}
	return k.inner.Sign(ctx, req)
}

// TestReplaceConcurrentStoresOneAttempt: Replace calls that read the same
// latest attempt store one new attempt between them, on the primary key.
func TestReplaceConcurrentStoresOneAttempt(t *testing.T) {
	f := newChainFixture(t)
	req := f.Request("wf-replace-race", 11)
	stuck := f.SendStuck(req)
	const n = 4
	signer := &barrierSigner{inner: f.Signer, n: n, all: make(chan struct{})}
	bc := f.BroadcasterWith(f.Client, signer, evmtest.MaxFeeWei, 0)

	results := make([]evm.SignedTx, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = bc.Sender.Replace(f.Ctx, req.WorkflowID, req.Step, 1) })
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("racer %d: %v", i, errs[i])
		}
		if results[i].Attempt != 1 || results[i].Hash != results[0].Hash || results[i].Hash == stuck.Hash || results[i].Mined {
			t.Fatalf("racer %d returned attempt %d %s, racer 0 %s", i, results[i].Attempt, results[i].Hash.Hex(), results[0].Hash.Hex())
		}
		if !results[i].Replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d racers claim to have stored the replacement, want 1", fresh)
	}
	if c := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); c != 2 {
		t.Fatalf("%d signed_txs rows, want the original and one replacement", c)
	}
	if next := f.NextNonce(f.Sender); next != 1 {
		t.Fatalf("nonce lane at %d, want 1: a replacement takes no nonce", next)
	}
	f.Sim.Commit()
	f.RequireSuccess(results[0].Hash)
	if got := f.TokenBalance(evmtest.Recipient); got.Int64() != 11 {
		t.Fatalf("recipient holds %s, want 11", got)
	}
}

// TestReplaceRefusals: a replacement the fee cap cannot pay for, or one
// attempt too many, stores nothing and leaves the stuck attempt as it was.
func TestReplaceRefusals(t *testing.T) {
	f := newChainFixture(t)

	capReq := f.Request("wf-replace-cap", 1)
	capStuck := f.SendStuck(capReq)
	// The cap equals the stuck attempt's fee cap: even the minimal bump is above it.
	capped := f.BroadcasterWith(f.Client, f.Signer, decodeTx(t, capStuck.Raw).GasFeeCap(), 0)
	calls := f.Signer.Calls.Load()
	if _, err := capped.Sender.Replace(f.Ctx, capReq.WorkflowID, capReq.Step, 1); !errors.Is(err, chain.ErrFeeCapExceeded) {
		t.Fatalf("Replace above the fee cap: %v, want ErrFeeCapExceeded", err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", capReq.WorkflowID); n != 1 {
		t.Fatalf("%d signed_txs rows after a refused replacement, want 1", n)
	}
	if n := f.Signer.Calls.Load(); n != calls {
		t.Fatal("a refused replacement asked the signer")
	}
	if s, err := f.BC.Store.Stored(f.Ctx, capReq.WorkflowID, capReq.Step); err != nil || s.Hash != capStuck.Hash {
		t.Fatalf("latest attempt %s (%v), want the stuck one", s.Hash.Hex(), err)
	}

	// Up to MaxAttempts attempts, the original included.
	req := f.Request("wf-replace-max", 1)
	f.SendStuck(req)
	two := f.BroadcasterWith(f.Client, f.Signer, evmtest.MaxFeeWei, 2)
	if _, err := two.Sender.Replace(f.Ctx, req.WorkflowID, req.Step, 1); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	if _, err := two.Sender.Replace(f.Ctx, req.WorkflowID, req.Step, 2); !errors.Is(err, chain.ErrTooManyAttempts) {
		t.Fatalf("third attempt: %v, want ErrTooManyAttempts", err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); n != 2 {
		t.Fatalf("%d signed_txs rows, want 2", n)
	}
}

// flakySend is the simulated node whose next fail SendTransaction calls fail
// as a dropped connection would: nothing reaches the pool.
type flakySend struct {
	evm.Backend
	fail atomic.Int32
}

func (b *flakySend) SendTransaction(ctx context.Context, tx *types.Transaction) error {
	if b.fail.Add(-1) >= 0 {
		return errors.New("connection reset by peer")
	}
	return b.Backend.SendTransaction(ctx, tx)
}

// TestReplaceRetriesStoreOneReplacement (retries must not burn replacement
// attempts): the first replacement's broadcast fails twice and Temporal
// retries the same logical replacement; the step still has exactly one
// replacement, sent with the bytes stored by the first call.
func TestReplaceRetriesStoreOneReplacement(t *testing.T) {
	f := newChainFixture(t)
	req := f.Request("wf-replace-retry", 13)
	stuck := f.SendStuck(req)
	flaky := &flakySend{Backend: f.Client}
	flaky.fail.Store(2)
	bc := f.BroadcasterWith(flaky, f.Signer, evmtest.MaxFeeWei, 0)

	var results []evm.SignedTx
	for i := range 3 {
		got, err := bc.Sender.Replace(f.Ctx, req.WorkflowID, req.Step, 1)
		if i < 2 {
			if err == nil {
				t.Fatalf("call %d: the broadcast did not fail", i+1)
			}
			continue
		}
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		results = append(results, got)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); n != 2 {
		t.Fatalf("%d signed_txs rows after three tries of one replacement, want the original and one replacement", n)
	}
	got := results[0]
	if got.Attempt != 1 || !got.Replayed || got.Hash == stuck.Hash {
		t.Fatalf("retried replacement: attempt %d replayed=%v hash %s", got.Attempt, got.Replayed, got.Hash.Hex())
	}
	f.Sim.Commit()
	f.RequireSuccess(got.Hash)
	if b := f.TokenBalance(evmtest.Recipient); b.Int64() != 13 {
		t.Fatalf("recipient holds %s, want 13", b)
	}
}
