package send_test

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/send"

	"payflow/chain/evm/evmtest"
)

func (f *chainFixture) inspect(wf string, confirmations uint64) send.Inspection {
	f.T.Helper()
	in, err := f.BC.Sender.Inspect(f.Ctx, wf, "transfer", confirmations)
	if err != nil {
		f.T.Fatalf("inspecting %s: %v", wf, err)
	}
	return in
}

// TestInspectMinedTransfer: pending while in the pool, then mined with its
// block and the Transfer log it was signed for.
func TestInspectMinedTransfer(t *testing.T) {
	f := newChainFixture(t)
	if _, err := f.BC.Sender.Inspect(f.Ctx, "wf-none", "transfer", 3); !errors.Is(err, chain.ErrNotSigned) {
		t.Fatalf("Inspect of an unsigned step: %v, want ErrNotSigned", err)
	}
	stx := f.SignAndSend(f.Request("wf-ok", 17))
	if in := f.inspect("wf-ok", 3); in.State != chain.TransferPending || in.Attempt.Hash != stx.Hash {
		t.Fatalf("before mining: %+v", in)
	}
	minedAt := f.Sim.Commit()
	r := f.RequireSuccess(stx.Hash)
	in := f.inspect("wf-ok", 3)
	if in.State != chain.TransferMined || !in.Succeeded || in.Reason != "" || in.Attempt.Hash != stx.Hash ||
		!in.Attempt.Mined || in.BlockHash != minedAt || in.BlockNumber != r.BlockNumber.Uint64() {
		t.Fatalf("mined transfer: %+v", in)
	}
}

// TestInspectRevertedTransfer: a mined transfer that reverted is
// mined and not succeeded, with the reason.
func TestInspectRevertedTransfer(t *testing.T) {
	f := newChainFixture(t)
	half := new(big.Int).Div(evmtest.SenderTokens, big.NewInt(2)).Int64()
	f.SignAndSend(f.Request("wf-first", half+1))
	bad := f.SignAndSend(f.Request("wf-bad", half+1)) // fitted the balance when signed
	f.Sim.Commit()
	in := f.inspect("wf-bad", 1)
	if in.State != chain.TransferMined || in.Succeeded || in.Attempt.Hash != bad.Hash ||
		!strings.Contains(in.Reason, "reverted in block") {
		t.Fatalf("reverted transfer: %+v", in)
	}
}

// TestInspectTokenThatMovesNothing: a token that answers
// transfer with false instead of reverting gives a receipt with status 1 and
// no Transfer log: the transfer did not succeed.
func TestInspectTokenThatMovesNothing(t *testing.T) {
	f := newChainFixture(t)
	req := f.Request("wf-false", 5)
	req.Token = evmtest.FalseToken
	stx := f.SignAndSend(req)
	f.Sim.Commit()
	f.RequireSuccess(stx.Hash) // status 1
	in := f.inspect("wf-false", 1)
	if in.State != chain.TransferMined || in.Succeeded || !strings.Contains(in.Reason, "moved no tokens") {
		t.Fatalf("transfer through a token returning false: %+v", in)
	}
}

// TestInspectFeeTakingTokenIsPaid: a token that takes a fee on transfer
// moves fewer units to the recipient than were signed for. The transfer
// moved money, so it succeeded (a status=0 answer would make the business
// pay again), and the inspection says what the recipient received.
func TestInspectFeeTakingTokenIsPaid(t *testing.T) {
	f := newChainFixture(t)
	req := f.Request("wf-fee", 1000)
	req.Token = evmtest.FeeToken
	stx := f.SignAndSend(req)
	f.Sim.Commit()
	f.RequireSuccess(stx.Hash)
	in := f.inspect("wf-fee", 1)
	if in.State != chain.TransferMined || !in.Succeeded || in.Reason != "" {
		t.Fatalf("transfer through a fee-taking token: %+v", in)
	}
	if in.Token != evmtest.FeeToken || in.Units.Int64() != 1000 || in.Received.Int64() != 500 {
		t.Fatalf("token %s units %v received %v, want %s 1000 500", in.Token, in.Units, in.Received, evmtest.FeeToken)
	}
}

// TestInspectNativeTransfer: a native transfer needs only status 1.
func TestInspectNativeTransfer(t *testing.T) {
	f := newChainFixture(t)
	stx, err := f.BC.Signer.SignNative(f.Ctx, send.NativeTransferRequest{WorkflowID: "wf-native", Step: "transfer",
		From: f.Sender, To: evmtest.Recipient, Wei: big.NewInt(1000)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.BC.Sender.Send(f.Ctx, "wf-native", "transfer"); err != nil {
		t.Fatal(err)
	}
	f.Sim.Commit()
	if in := f.inspect("wf-native", 1); in.State != chain.TransferMined || !in.Succeeded || in.Attempt.Hash != stx.Hash {
		t.Fatalf("native transfer: %+v", in)
	}
}

// TestNonceTakenDuringReplacement (a nonce taken during a replacement must
// not leave the payment stuck for ever): another transaction from the wallet takes the nonce of a
// stuck transfer. Replace and Send say ErrNonceTooLow and sign nothing;
// Inspect says pending until the stranger is confirmations deep, then
// dropped, so the caller can release the payment.
func TestNonceTakenDuringReplacement(t *testing.T) {
	f := newChainFixture(t)
	const conf = 3
	req := f.Request("wf-taken", 21)
	stuck := f.SendStuck(req)

	// The stranger: a self-transfer on the same nonce, signed outside payflow.
	foreign, err := types.SignNewTx(evmtest.MustKey(t, evmtest.SenderKeyHex), types.LatestSignerForChainID(big.NewInt(evmtest.SimChainID)),
		&types.DynamicFeeTx{ChainID: big.NewInt(evmtest.SimChainID), Nonce: stuck.Nonce, GasTipCap: big.NewInt(1_000_000_000),
			GasFeeCap: evmtest.MaxFeeWei, Gas: 21000, To: &f.Sender, Value: new(big.Int)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Client.SendTransaction(f.Ctx, foreign); err != nil {
		t.Fatal(err)
	}
	f.Sim.Commit()
	f.RequireSuccess(foreign.Hash())

	if _, err := f.BC.Sender.Replace(f.Ctx, req.WorkflowID, req.Step, 1); !errors.Is(err, chain.ErrNonceTooLow) {
		t.Fatalf("Replace after the nonce was taken: %v, want ErrNonceTooLow", err)
	}
	if _, err := f.BC.Sender.Send(f.Ctx, req.WorkflowID, req.Step); !errors.Is(err, chain.ErrNonceTooLow) {
		t.Fatalf("Send after the nonce was taken: %v, want ErrNonceTooLow", err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); n != 1 {
		t.Fatalf("%d attempts stored, want only the original", n)
	}
	for depth := 1; depth < conf; depth++ {
		if in := f.inspect(req.WorkflowID, conf); in.State != chain.TransferPending {
			t.Fatalf("stranger %d deep: %+v, want pending", depth, in)
		}
		f.Sim.Commit()
	}
	in := f.inspect(req.WorkflowID, conf)
	if in.State != chain.TransferDropped || in.Attempt.Hash != stuck.Hash ||
		!strings.Contains(in.Reason, "nonce 0 of "+evm.Lower(f.Sender)+" was used by another transaction") {
		t.Fatalf("stranger %d deep: %+v, want dropped", conf, in)
	}
	if b := f.TokenBalance(evmtest.Recipient); b.Sign() != 0 {
		t.Fatalf("recipient holds %s, want nothing", b)
	}
}
