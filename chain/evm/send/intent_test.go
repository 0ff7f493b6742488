package send_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/send"
	"payflow/custody/signerapi"

	"payflow/chain/evm/evmtest"
)

// stepSigner holds a step to one transaction as payflow-signer does, over
// the fixture's keys: a (chain, workflow, step, attempt) is signed once; the
// same request again is answered with the same signature, another one is
// refused (a step conflict). before, when set, runs first and may fail the
// request unsigned (the signer unavailable); after runs once the request is
// signed (and kept) and may lose the answer by returning an error.
type stepSigner struct {
	keys          *evmtest.LocalSigner
	before, after func(req signerapi.SignRequest) error
	mu            sync.Mutex
	steps         map[string]stepSigned
	asked         []signerapi.SignRequest
}

type stepSigned struct {
	req  signerapi.SignRequest
	resp signerapi.SignResponse
}

func newStepSigner(f *chainFixture) *stepSigner {
	return &stepSigner{keys: f.Signer, steps: map[string]stepSigned{}}
}

func (s *stepSigner) Sign(ctx context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error) {
	key := fmt.Sprintf("%s/%s/%s/%d", req.Chain, req.WorkflowID, req.Step, req.Attempt)
	s.mu.Lock()
	s.asked = append(s.asked, req)
	prev, ok := s.steps[key]
	s.mu.Unlock()
	if s.before != nil {
		if err := s.before(req); err != nil {
			return signerapi.SignResponse{}, err
		}
	}
	var resp signerapi.SignResponse
	switch {
	case ok && !reflect.DeepEqual(prev.req, req):
		return signerapi.SignResponse{}, &signerapi.Error{Code: signerapi.CodeRefused,
			Message: "step " + key + " was signed for another transaction"}
	case ok:
		resp = prev.resp
		resp.Replayed = true
	default:
		var err error
		if resp, err = s.keys.Sign(ctx, req); err != nil {
			return signerapi.SignResponse{}, err
		}
		s.mu.Lock()
		s.steps[key] = stepSigned{req: req, resp: resp}
		s.mu.Unlock()
	}
	if s.after != nil {
		if err := s.after(req); err != nil {
			return signerapi.SignResponse{}, err
		}
	}
	return resp, nil
}

// askedFor returns the requests for workflowID's attempt 0, in order.
func (s *stepSigner) askedFor(workflowID string) []signerapi.SignRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []signerapi.SignRequest
	for _, r := range s.asked {
		if r.WorkflowID == workflowID && r.Attempt == 0 {
			out = append(out, r)
		}
	}
	return out
}

// TestLostSignatureIsAskedForAgainIdentically: the signer signs a transfer
// and its answer is lost (the worker dies before storing it). The step's
// intent took the nonce and committed before the signer was asked, so the
// wallet's next transfers take the nonces after it; the retry, on another
// worker whose fees differ, asks for the identical transaction, which the
// signer (holding each step to one transaction) replays: the step is stored
// on its intent's nonce and every transfer mines. Under the old order (the
// nonce rolled back with the lost answer) the retry asked for another nonce
// and was refused as a step conflict.
func TestLostSignatureIsAskedForAgainIdentically(t *testing.T) {
	f := newChainFixture(t)
	signer := newStepSigner(f)
	var lost sync.Once
	signer.after = func(req signerapi.SignRequest) error {
		var err error
		if req.WorkflowID == "wf-lost" {
			lost.Do(func() { err = errors.New("worker killed before storing the answer") })
		}
		return err
	}
	// The first worker prices with a 1 wei tip: its intent's fees are not
	// what the retry's worker would price.
	first := f.BroadcasterWith(evmtest.LowTipBackend{Backend: f.Client}, signer, evmtest.MaxFeeWei, 0)
	req := f.Request("wf-lost", 7)
	if _, err := first.Signer.SignTransfer(f.Ctx, req); err == nil || !strings.Contains(err.Error(), "worker killed") {
		t.Fatalf("first call: %v, want the lost answer's error", err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-lost'"); n != 0 {
		t.Fatalf("%d rows stored for a lost answer", n)
	}
	// Other transfers of the wallet, on another worker, meanwhile.
	second := f.BroadcasterWith(f.Client, signer, evmtest.MaxFeeWei, 0)
	var others []evm.SignedTx
	for i := range 2 {
		r := f.Request(fmt.Sprintf("wf-after-lost-%d", i), 1)
		stx, err := second.Signer.SignTransfer(f.Ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := second.Sender.Send(f.Ctx, r.WorkflowID, r.Step); err != nil {
			t.Fatal(err)
		}
		others = append(others, stx)
	}
	if others[0].Nonce != 1 || others[1].Nonce != 2 {
		t.Fatalf("the later transfers took nonces %d and %d, want 1 and 2 (0 is the lost step's)", others[0].Nonce, others[1].Nonce)
	}
	// The retry, on the second worker.
	stx, err := second.Signer.SignTransfer(f.Ctx, req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	asked := signer.askedFor("wf-lost")
	if len(asked) != 2 || !reflect.DeepEqual(asked[0], asked[1]) {
		t.Fatalf("the step was asked %d times: %+v; want twice, identically", len(asked), asked)
	}
	if stx.Nonce != 0 || asked[0].Tx.Nonce != 0 || asked[0].Tx.TipCap != "1" {
		t.Fatalf("stored on nonce %d, asked %+v; want nonce 0 at the first worker's 1 wei tip", stx.Nonce, asked[0].Tx)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE chain=? AND from_address=? AND nonce=0", evmtest.ChainName,
		evm.Lower(f.Sender)); n != 1 {
		t.Fatalf("%d transactions stored on nonce 0, want the lost step's alone", n)
	}
	// A third call replays what is stored and asks nothing.
	if again, err := second.Signer.SignTransfer(f.Ctx, req); err != nil || !again.Replayed || again.Hash != stx.Hash {
		t.Fatalf("replay: %+v, %v", again, err)
	}
	if n := len(signer.askedFor("wf-lost")); n != 2 {
		t.Fatalf("the signer was asked %d times, want 2", n)
	}
	// The 1 wei tip is below the simulated miner's floor: bump it, as the
	// payment's replacement would, and everything mines in nonce order.
	if _, err := second.Sender.Send(f.Ctx, req.WorkflowID, req.Step); err != nil {
		t.Fatal(err)
	}
	next, err := second.Sender.Replace(f.Ctx, req.WorkflowID, req.Step, 1)
	if err != nil || next.Nonce != 0 {
		t.Fatalf("replacing: %+v, %v", next, err)
	}
	f.Sim.Commit()
	f.RequireSuccess(next.Hash)
	for _, o := range others {
		f.RequireSuccess(o.Hash)
	}
	if b := f.TokenBalance(evmtest.Recipient); b.Int64() != 7+1+1 {
		t.Fatalf("recipient holds %s, want 9", b)
	}
}

// TestSlowSignerDoesNotHoldTheLane: the signer is asked outside the nonce
// lane, after the intent committed: while transfer A's signature is pending,
// transfer B of the same wallet takes the next nonce, is signed and stored.
// Each request reaches the signer with its intent already committed.
func TestSlowSignerDoesNotHoldTheLane(t *testing.T) {
	f := newChainFixture(t)
	signer := newStepSigner(f)
	entered, release := make(chan struct{}), make(chan struct{})
	var committed sync.Map // workflow id → intents committed when the signer was asked
	signer.after = func(req signerapi.SignRequest) error {
		var n int
		if err := f.DB.QueryRowContext(f.Ctx, "SELECT COUNT(*) FROM sign_intents WHERE workflow_id=? AND nonce=?",
			req.WorkflowID, req.Tx.Nonce).Scan(&n); err != nil {
			return err
		}
		committed.Store(req.WorkflowID, n)
		if req.WorkflowID == "wf-slow" {
			close(entered)
			<-release
		}
		return nil
	}
	bc := f.BroadcasterWith(f.Client, signer, evmtest.MaxFeeWei, 0)
	type result struct {
		stx evm.SignedTx
		err error
	}
	slow := make(chan result, 1)
	go func() {
		stx, err := bc.Signer.SignTransfer(f.Ctx, f.Request("wf-slow", 1))
		slow <- result{stx, err}
	}()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(f.Ctx, time.Minute)
	defer cancel()
	fast, err := bc.Signer.SignTransfer(ctx, f.Request("wf-fast", 2))
	if err != nil {
		t.Fatalf("B while A's signature is pending: %v (the lane is held while the signer is asked?)", err)
	}
	close(release)
	released = true
	a := <-slow
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.stx.Nonce != 0 || fast.Nonce != 1 {
		t.Fatalf("A on nonce %d, B on %d; want 0 and 1", a.stx.Nonce, fast.Nonce)
	}
	for _, wf := range []string{"wf-slow", "wf-fast"} {
		if n, _ := committed.Load(wf); n != 1 {
			t.Fatalf("%s's intent was not committed when the signer was asked (%v)", wf, n)
		}
	}
	for _, wf := range []string{"wf-slow", "wf-fast"} {
		if _, err := bc.Sender.Send(f.Ctx, wf, "transfer"); err != nil {
			t.Fatal(err)
		}
	}
	f.Sim.Commit()
	f.RequireSuccess(a.stx.Hash)
	f.RequireSuccess(fast.Hash)
}

// TestHealerFillsARefusedIntent: a transfer the signer refuses leaves its
// nonce to its intent and no transaction on it, so the wallet's later
// transfers wait behind the gap. The healer fills it with a gap filler (no
// reservation, nothing moved); the later transfers mine, the next one takes
// the next nonce, and the refused step, asked again, is told its nonce is
// gone. A refusal is final, so its nonce is filled at the healer's next
// pass, whatever its age. An intent whose signer could not answer is its
// running workflow's (left alone) and filled once that workflow has ended.
func TestHealerFillsARefusedIntent(t *testing.T) {
	f := newChainFixture(t)
	refusing := f.BroadcasterWith(f.Client, signerFunc(func(ctx context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error) {
		switch req.WorkflowID {
		case "wf-refused":
			return signerapi.SignResponse{}, &signerapi.Error{Code: signerapi.CodeRefused,
				Message: "reservation wf-refused holds 5 USDT, not 6"}
		case "wf-down":
			return signerapi.SignResponse{}, fmt.Errorf("%w: connection refused", signerapi.ErrUnavailable)
		}
		return f.Signer.Sign(ctx, req)
	}), evmtest.MaxFeeWei, 0)
	if _, err := refusing.Signer.SignTransfer(f.Ctx, f.Request("wf-refused", 6)); !errors.Is(err, chain.ErrSignerRefused) {
		t.Fatalf("got %v, want the refusal", err)
	}
	if _, err := refusing.Signer.SignTransfer(f.Ctx, f.Request("wf-down", 8)); !errors.Is(err, signerapi.ErrUnavailable) {
		t.Fatalf("got %v, want the signer unavailable", err)
	}
	blocked := f.SignAndSend(f.Request("wf-blocked", 3))
	if blocked.Nonce != 2 {
		t.Fatalf("the next transfer took nonce %d, want 2 (0 and 1 held by intents)", blocked.Nonce)
	}
	f.Sim.Commit()
	if _, err := f.Client.TransactionReceipt(f.Ctx, blocked.Hash); err == nil {
		t.Fatal("nonce 2 mined over a gap")
	}

	// A refusal is final: its nonce is filled whatever its age (the
	// young open intent after it is left alone).
	owners := &fakeOwners{running: map[string]bool{"wf-down": true}}
	reps, err := f.BC.Healer.HealGaps(f.Ctx, time.Hour, owners)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Action != "filled" || reps[0].Nonce != 0 {
		t.Fatalf("reports %+v, want nonce 0 filled", reps)
	}
	if len(owners.asked) != 0 {
		t.Fatalf("owners asked about %v: a refused intent's nonce is filled without, a young one is not touched", owners.asked)
	}
	filler := f.Signer.Asked()[len(f.Signer.Asked())-1]
	if wf, step, attempt := evm.GapFiller(f.Sender, 0); filler.WorkflowID != wf || filler.Step != step ||
		filler.Attempt != attempt || filler.Reservation != "" || filler.Tx.To != evm.Lower(f.Sender) ||
		filler.Tx.Value != "0" || filler.Tx.Data != "" || filler.Tx.Nonce != 0 {
		t.Fatalf("the gap filler was asked as %+v", filler)
	}
	f.Sim.Commit()
	f.RequireSuccess(reps[0].TxHash)
	if n := f.Count("SELECT COUNT(*) FROM sign_intents WHERE workflow_id='wf-refused' AND state='filled'"); n != 1 {
		t.Fatal("the refused intent is not marked filled")
	}
	if _, err := refusing.Signer.SignTransfer(f.Ctx, f.Request("wf-refused", 6)); !errors.Is(err, chain.ErrNonceTooLow) {
		t.Fatalf("the refused step asked again: %v, want ErrNonceTooLow (its nonce went to the filler)", err)
	}
	// wf-down still runs: its nonce is left to it.
	if reps, err := f.BC.Healer.HealGaps(f.Ctx, 0, owners); err != nil || len(reps) != 0 {
		t.Fatalf("with wf-down running: %+v, %v; want its nonce left alone", reps, err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE chain=? AND from_address=? AND nonce=1", evmtest.ChainName,
		evm.Lower(f.Sender)); n != 0 {
		t.Fatal("a running workflow's intent was filled")
	}

	// wf-down has ended: its nonce is filled too, and the blocked transfer mines.
	owners.running = nil
	reps, err = f.BC.Healer.HealGaps(f.Ctx, 0, owners)
	if err != nil || len(reps) != 1 || reps[0].Action != "filled" || reps[0].Nonce != 1 {
		t.Fatalf("reports %+v, %v; want nonce 1 filled", reps, err)
	}
	f.Sim.Commit()
	f.RequireSuccess(reps[0].TxHash)
	f.RequireSuccess(blocked.Hash)
	later := f.SignAndSend(f.Request("wf-later", 4))
	if later.Nonce != 3 {
		t.Fatalf("a later transfer took nonce %d, want 3", later.Nonce)
	}
	f.Sim.Commit()
	f.RequireSuccess(later.Hash)
	if b := f.TokenBalance(evmtest.Recipient); b.Int64() != 3+4 {
		t.Fatalf("recipient holds %s, want 7 (the refused and abandoned steps moved nothing)", b)
	}
}

// TestUnavailableSignerKeepsTheIntent: the signer unavailable is a retryable
// error (not a refusal); the step's intent stays open with its nonce, while
// other transfers take the next ones; the retry asks for the same
// transaction and stores it on that nonce.
func TestUnavailableSignerKeepsTheIntent(t *testing.T) {
	f := newChainFixture(t)
	signer := newStepSigner(f)
	var down sync.Once
	signer.before = func(signerapi.SignRequest) (err error) {
		down.Do(func() { err = fmt.Errorf("%w: connection refused", signerapi.ErrUnavailable) })
		return err
	}
	bc := f.BroadcasterWith(f.Client, signer, evmtest.MaxFeeWei, 0)
	req := f.Request("wf-unavailable", 5)
	_, err := bc.Signer.SignTransfer(f.Ctx, req)
	if !errors.Is(err, signerapi.ErrUnavailable) || errors.Is(err, chain.ErrSignerRefused) {
		t.Fatalf("got %v, want ErrUnavailable and no refusal", err)
	}
	if n := f.Count("SELECT COUNT(*) FROM sign_intents WHERE workflow_id='wf-unavailable' AND state='open' AND nonce=0"); n != 1 {
		t.Fatal("no open intent on nonce 0")
	}
	other := f.SignAndSend(f.Request("wf-other", 1))
	if other.Nonce != 1 {
		t.Fatalf("the other transfer took nonce %d, want 1", other.Nonce)
	}
	stx, err := bc.Signer.SignTransfer(f.Ctx, req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	asked := signer.askedFor("wf-unavailable")
	if len(asked) != 2 || !reflect.DeepEqual(asked[0], asked[1]) || stx.Nonce != 0 || stx.Replayed {
		t.Fatalf("asked %+v, stored %+v; want the same request twice, stored on nonce 0", asked, stx)
	}
	if _, err := bc.Sender.Send(f.Ctx, req.WorkflowID, req.Step); err != nil {
		t.Fatal(err)
	}
	f.Sim.Commit()
	f.RequireSuccess(stx.Hash)
	f.RequireSuccess(other.Hash)
}

var _ send.TxSigner = (*stepSigner)(nil)
