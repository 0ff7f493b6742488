package send_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/send"

	"payflow/chain/evm/evmtest"
)

func TestSignTransferThenSendMovesTokens(t *testing.T) {
	f := newChainFixture(t)
	const units = 12_345_678

	stx, err := f.BC.Signer.SignTransfer(f.Ctx, f.Request("wf-1", units))
	if err != nil {
		t.Fatal(err)
	}
	if stx.Replayed || stx.Nonce != 0 || stx.From != f.Sender {
		t.Fatalf("first signature: replayed=%v nonce=%d from=%s", stx.Replayed, stx.Nonce, stx.From.Hex())
	}
	var decoded types.Transaction
	if err := decoded.UnmarshalBinary(stx.Raw); err != nil {
		t.Fatal(err)
	}
	if decoded.Hash() != stx.Hash || *decoded.To() != f.Token || decoded.ChainId().Int64() != evmtest.SimChainID {
		t.Fatalf("stored bytes decode to %s to %s chain %s", decoded.Hash().Hex(), decoded.To().Hex(), decoded.ChainId())
	}
	if from, err := types.Sender(types.LatestSignerForChainID(big.NewInt(evmtest.SimChainID)), &decoded); err != nil || from != f.Sender {
		t.Fatalf("signed by %s (%v), want %s", from.Hex(), err, f.Sender.Hex())
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-1' AND state='signed'"); n != 1 {
		t.Fatalf("%d signed rows before send", n)
	}
	// Signing alone must not touch the chain.
	if _, err := f.Client.TransactionReceipt(f.Ctx, stx.Hash); err == nil {
		t.Fatal("transaction has a receipt before it was sent")
	}

	if _, err := f.BC.Sender.Send(f.Ctx, "wf-1", "transfer"); err != nil {
		t.Fatal(err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-1' AND state='sent'"); n != 1 {
		t.Fatalf("%d rows marked sent", n)
	}
	f.Sim.Commit()

	r, err := f.BC.Sender.Receipt(f.Ctx, stx.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("receipt status %d", r.Status)
	}
	if got := f.TokenBalance(evmtest.Recipient); got.Int64() != units {
		t.Fatalf("recipient holds %s, want %d", got, units)
	}
	if got, want := f.TokenBalance(f.Sender), new(big.Int).Sub(evmtest.SenderTokens, big.NewInt(units)); got.Cmp(want) != 0 {
		t.Fatalf("sender holds %s, want %s", got, want)
	}
	if n := f.Signer.Calls.Load(); n != 1 {
		t.Fatalf("signer asked %d times, want 1", n)
	}
}

func TestSignTransferReplayedStepSignsNothing(t *testing.T) {
	f := newChainFixture(t)
	req := f.Request("wf-replay", 1_000_000)

	first, err := f.BC.Signer.SignTransfer(f.Ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.BC.Signer.SignTransfer(f.Ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed || !second.Replayed {
		t.Fatalf("replayed flags: first=%v second=%v", first.Replayed, second.Replayed)
	}
	if first.Hash != second.Hash || !bytes.Equal(first.Raw, second.Raw) || first.Nonce != second.Nonce {
		t.Fatalf("replay returned another transaction: %s/%d vs %s/%d", first.Hash.Hex(), first.Nonce,
			second.Hash.Hex(), second.Nonce)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=? AND step=?", req.WorkflowID, req.Step); n != 1 {
		t.Fatalf("%d signed_txs rows for one step", n)
	}
	if n := f.NextNonce(f.Sender); n != 1 {
		t.Fatalf("nonce lane at %d after one signature, want 1", n)
	}
	if n := f.Signer.Calls.Load(); n != 1 {
		t.Fatalf("signer asked %d times, want 1", n)
	}

	// Sending twice before mining: the node already has it.
	for i := 0; i < 2; i++ {
		if _, err := f.BC.Sender.Send(f.Ctx, req.WorkflowID, req.Step); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	f.Sim.Commit()
	f.RequireSuccess(first.Hash)
	// Sending after it mined: the node says "nonce too low", the receipt says it is ours.
	if _, err := f.BC.Sender.Send(f.Ctx, req.WorkflowID, req.Step); err != nil {
		t.Fatalf("send after mining: %v", err)
	}
	f.Sim.Commit()

	if got := f.TokenBalance(evmtest.Recipient); got.Cmp(req.Units) != 0 {
		t.Fatalf("recipient holds %s after replays, want exactly %s", got, req.Units)
	}
	if n, err := f.Client.NonceAt(f.Ctx, f.Sender, nil); err != nil || n != 1 {
		t.Fatalf("sender sent %d transactions on chain (%v), want 1", n, err)
	}
}

func TestSignTransferConcurrentSameStepStoresOne(t *testing.T) {
	f := newChainFixture(t)
	req := f.Request("wf-race", 5)
	const n = 8
	results := make([]evm.SignedTx, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = f.BC.Signer.SignTransfer(f.Ctx, req) })
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("attempt %d: %v", i, errs[i])
		}
		if results[i].Hash != results[0].Hash || !bytes.Equal(results[i].Raw, results[0].Raw) {
			t.Fatalf("attempt %d returned %s, attempt 0 %s", i, results[i].Hash.Hex(), results[0].Hash.Hex())
		}
		if !results[i].Replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d attempts claim to have signed, want 1", fresh)
	}
	if c := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); c != 1 {
		t.Fatalf("%d signed_txs rows", c)
	}
	// Losers may have locked the lane and signed, but rolled back: no nonce is burnt.
	if next := f.NextNonce(f.Sender); next != 1 {
		t.Fatalf("nonce lane at %d, want 1", next)
	}
}

// concurrentSigns is how many transfers one wallet signs at once. 500 (the
// issue's number) runs in well under a minute on two cores.
const concurrentSigns = 500

func TestSignTransferConcurrentNoncesHaveNoGaps(t *testing.T) {
	f := newChainFixture(t)
	const units = 7
	start := time.Now()

	results := make([]evm.SignedTx, concurrentSigns)
	errs := make([]error, concurrentSigns)
	var wg sync.WaitGroup
	for i := range concurrentSigns {
		wg.Go(func() {
			results[i], errs[i] = f.BC.Signer.SignTransfer(f.Ctx, f.Request(fmt.Sprintf("wf-many-%03d", i), units))
		})
	}
	wg.Wait()
	signedIn := time.Since(start)

	byNonce := make([]*evm.SignedTx, concurrentSigns)
	for i := range concurrentSigns {
		if errs[i] != nil {
			t.Fatalf("signing %d: %v", i, errs[i])
		}
		s := &results[i]
		if s.Replayed {
			t.Fatalf("signing %d claims a replay", i)
		}
		if s.Nonce >= concurrentSigns || byNonce[s.Nonce] != nil {
			t.Fatalf("nonce %d handed out twice or out of range", s.Nonce)
		}
		byNonce[s.Nonce] = s
	}

	rows, err := f.DB.QueryContext(f.Ctx, "SELECT nonce, tx_hash FROM signed_txs WHERE chain=? AND from_address=? ORDER BY nonce",
		evmtest.ChainName, evm.Lower(f.Sender))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := uint64(0)
	for rows.Next() {
		var nonce uint64
		var hash string
		if err := rows.Scan(&nonce, &hash); err != nil {
			t.Fatal(err)
		}
		if nonce != want {
			t.Fatalf("stored nonces jump from %d to %d", want-1, nonce)
		}
		if hash != byNonce[nonce].Hash.Hex() {
			t.Fatalf("nonce %d stored as %s, returned as %s", nonce, hash, byNonce[nonce].Hash.Hex())
		}
		want++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want != concurrentSigns {
		t.Fatalf("%d stored transactions, want %d", want, concurrentSigns)
	}
	if next := f.NextNonce(f.Sender); next != concurrentSigns {
		t.Fatalf("nonce lane at %d, want %d", next, concurrentSigns)
	}

	// In nonce order, as the pool only keeps a short run of gapped nonces per account.
	for _, s := range byNonce {
		if _, err := f.BC.Sender.Send(f.Ctx, s.WorkflowID, s.Step); err != nil {
			t.Fatalf("sending nonce %d: %v", s.Nonce, err)
		}
	}
	// A block holds them all at the default 60M gas limit; allow a few in case it does not.
	for range 5 {
		f.Sim.Commit()
		if n, err := f.Client.NonceAt(f.Ctx, f.Sender, nil); err == nil && n == concurrentSigns {
			break
		}
	}
	for _, s := range byNonce {
		f.RequireSuccess(s.Hash)
	}
	if got := f.TokenBalance(evmtest.Recipient); got.Int64() != concurrentSigns*units {
		t.Fatalf("recipient holds %s, want %d", got, concurrentSigns*units)
	}
	t.Logf("%d concurrent signatures in %s, all mined in %s total", concurrentSigns, signedIn, time.Since(start))
}

func TestSignTransferRefusesWhatCannotPay(t *testing.T) {
	f := newChainFixture(t)

	tooMuch := f.Request("wf-too-much", 0)
	tooMuch.Units = new(big.Int).Add(evmtest.SenderTokens, big.NewInt(1))

	noGas := f.Request("wf-no-gas", 1)
	noGas.From = f.Broke // tokens, no ether

	for _, tc := range []struct {
		name string
		bc   *send.Broadcaster
		req  send.TransferRequest
		want error
	}{
		{"insufficient token", f.BC, tooMuch, chain.ErrInsufficientToken},
		{"insufficient gas", f.BC, noGas, chain.ErrInsufficientGas},
		{"fee above cap", f.NewBroadcaster(big.NewInt(1)), f.Request("wf-fee-cap", 1), chain.ErrFeeCapExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.bc.Signer.SignTransfer(f.Ctx, tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", tc.req.WorkflowID); n != 0 {
				t.Fatalf("%d signed_txs rows stored for a refused transfer", n)
			}
			if _, err := tc.bc.Sender.Send(f.Ctx, tc.req.WorkflowID, tc.req.Step); !errors.Is(err, chain.ErrNotSigned) {
				t.Fatalf("send of a refused transfer: %v, want ErrNotSigned", err)
			}
		})
	}
	if n := f.Count("SELECT COUNT(*) FROM nonces"); n != 0 {
		t.Fatalf("refused transfers opened %d nonce lanes", n)
	}
	if n := f.Signer.Calls.Load(); n != 0 {
		t.Fatalf("refused transfers asked the signer %d times", n)
	}
}

// balanceReads counts the token balance reads (balanceOf calls) asked of
// the node.
type balanceReads struct {
	evm.Backend
	n atomic.Int64
}

func (b *balanceReads) CallContract(ctx context.Context, msg ethereum.CallMsg, block *big.Int) ([]byte, error) {
	if len(msg.Data) >= 4 && bytes.Equal(msg.Data[:4], evm.ERC20.Methods["balanceOf"].ID) {
		b.n.Add(1)
	}
	return b.Backend.CallContract(ctx, msg, block)
}

func TestSignTransferOfASimulatedTransferReadsNoTokenBalance(t *testing.T) {
	f := newChainFixture(t)
	node := &balanceReads{Backend: f.Client}
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: evmtest.ChainName, ChainID: big.NewInt(evmtest.SimChainID),
		MaxFeeWei: evmtest.MaxFeeWei}, f.DB, node, f.Signer, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	simulated := f.Request("wf-simulated", 1)
	simulated.Simulated = true
	if _, err := bc.Signer.SignTransfer(f.Ctx, simulated); err != nil {
		t.Fatal(err)
	}
	if n := node.n.Load(); n != 0 {
		t.Fatalf("a transfer simulated by its caller read the token balance %d times", n)
	}
	if _, err := bc.Signer.SignTransfer(f.Ctx, f.Request("wf-not-simulated", 1)); err != nil {
		t.Fatal(err)
	}
	if n := node.n.Load(); n != 1 {
		t.Fatalf("a transfer nobody simulated read the token balance %d times, want 1", n)
	}
	// Not simulated, short of the token: refused before signing.
	tooMuch := f.Request("wf-short", 0)
	tooMuch.Units = new(big.Int).Add(evmtest.SenderTokens, big.NewInt(1))
	if _, err := bc.Signer.SignTransfer(f.Ctx, tooMuch); !errors.Is(err, chain.ErrInsufficientToken) {
		t.Fatalf("short of the token: %v, want ErrInsufficientToken", err)
	}
}
