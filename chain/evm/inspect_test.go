package evm_test

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"
	"payflow/chain/evm"
)

// falseToken answers every call without reverting and emits nothing:
// transfer(…) returns false (32 zero bytes), any other call (balanceOf)
// returns 2^256-1, so payflow's balance check lets the transfer be signed.
// Hand-assembled runtime code:
//
//	PUSH1 0 CALLDATALOAD PUSH1 0xe0 SHR PUSH4 0xa9059cbb EQ PUSH1 0x1a JUMPI
//	PUSH1 0 NOT PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
//	0x1a: JUMPDEST PUSH1 0 PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
var (
	falseToken     = common.HexToAddress("0x00000000000000000000000000000000000fa15e")
	falseTokenCode = hexutil.MustDecode("0x600035" + "60e01c" + "63a9059cbb" + "14" + "601a57" +
		"600019600052" + "60206000f3" + "5b" + "6000600052" + "60206000f3")
)

// feeToken takes half of every transfer as its fee: transfer(to, amount)
// emits Transfer(sender, to, amount/2) and returns true; any other call
// (balanceOf) returns 2^256-1. Hand-assembled runtime code:
//
//	PUSH1 0 CALLDATALOAD PUSH1 0xe0 SHR PUSH4 0xa9059cbb EQ PUSH1 0x1a JUMPI
//	PUSH1 0 NOT PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
//	0x1a: JUMPDEST PUSH1 2 PUSH1 0x24 CALLDATALOAD DIV PUSH1 0 MSTORE
//	PUSH1 4 CALLDATALOAD CALLER PUSH32 <Transfer topic> PUSH1 0x20 PUSH1 0 LOG3
//	PUSH1 1 PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
var (
	feeToken     = common.HexToAddress("0x00000000000000000000000000000000000fee70")
	feeTokenCode = hexutil.MustDecode("0x600035" + "60e01c" + "63a9059cbb" + "14" + "601a57" +
		"600019600052" + "60206000f3" + "5b" +
		"6002" + "602435" + "04" + "600052" +
		"600435" + "33" + "7f" + strings.TrimPrefix(evm.TransferTopic.Hex(), "0x") + "6020" + "6000" + "a3" +
		"6001600052" + "60206000f3")
)

func (f *chainFixture) inspect(wf string, confirmations uint64) evm.Inspection {
	f.t.Helper()
	in, err := f.bc.Sender.Inspect(f.ctx, wf, "transfer", confirmations)
	if err != nil {
		f.t.Fatalf("inspecting %s: %v", wf, err)
	}
	return in
}

// TestInspectMinedTransfer: pending while in the pool, then mined with its
// block and the Transfer log it was signed for.
func TestInspectMinedTransfer(t *testing.T) {
	f := newChainFixture(t)
	if _, err := f.bc.Sender.Inspect(f.ctx, "wf-none", "transfer", 3); !errors.Is(err, chain.ErrNotSigned) {
		t.Fatalf("Inspect of an unsigned step: %v, want ErrNotSigned", err)
	}
	stx := f.signAndSend(f.request("wf-ok", 17))
	if in := f.inspect("wf-ok", 3); in.State != chain.TransferPending || in.Attempt.Hash != stx.Hash {
		t.Fatalf("before mining: %+v", in)
	}
	minedAt := f.sim.Commit()
	r := f.requireSuccess(stx.Hash)
	in := f.inspect("wf-ok", 3)
	if in.State != chain.TransferMined || !in.Succeeded || in.Reason != "" || in.Attempt.Hash != stx.Hash ||
		!in.Attempt.Mined || in.BlockHash != minedAt || in.BlockNumber != r.BlockNumber.Uint64() {
		t.Fatalf("mined transfer: %+v", in)
	}
}

// TestInspectRevertedTransfer (defect 11): a mined transfer that reverted is
// mined and not succeeded, with the reason.
func TestInspectRevertedTransfer(t *testing.T) {
	f := newChainFixture(t)
	half := new(big.Int).Div(senderTokens, big.NewInt(2)).Int64()
	f.signAndSend(f.request("wf-first", half+1))
	bad := f.signAndSend(f.request("wf-bad", half+1)) // fitted the balance when signed
	f.sim.Commit()
	in := f.inspect("wf-bad", 1)
	if in.State != chain.TransferMined || in.Succeeded || in.Attempt.Hash != bad.Hash ||
		!strings.Contains(in.Reason, "reverted in block") {
		t.Fatalf("reverted transfer: %+v", in)
	}
}

// TestInspectTokenThatMovesNothing (defect 11): a token that answers
// transfer with false instead of reverting gives a receipt with status 1 and
// no Transfer log: the transfer did not succeed.
func TestInspectTokenThatMovesNothing(t *testing.T) {
	f := newChainFixture(t)
	req := f.request("wf-false", 5)
	req.Token = falseToken
	stx := f.signAndSend(req)
	f.sim.Commit()
	f.requireSuccess(stx.Hash) // status 1
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
	req := f.request("wf-fee", 1000)
	req.Token = feeToken
	stx := f.signAndSend(req)
	f.sim.Commit()
	f.requireSuccess(stx.Hash)
	in := f.inspect("wf-fee", 1)
	if in.State != chain.TransferMined || !in.Succeeded || in.Reason != "" {
		t.Fatalf("transfer through a fee-taking token: %+v", in)
	}
	if in.Token != feeToken || in.Units.Int64() != 1000 || in.Received.Int64() != 500 {
		t.Fatalf("token %s units %v received %v, want %s 1000 500", in.Token, in.Units, in.Received, feeToken)
	}
}

// TestInspectNativeTransfer: a native transfer needs only status 1.
func TestInspectNativeTransfer(t *testing.T) {
	f := newChainFixture(t)
	stx, err := f.bc.Signer.SignNative(f.ctx, evm.NativeTransferRequest{WorkflowID: "wf-native", Step: "transfer",
		From: f.sender, To: recipient, Wei: big.NewInt(1000)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.bc.Sender.Send(f.ctx, "wf-native", "transfer"); err != nil {
		t.Fatal(err)
	}
	f.sim.Commit()
	if in := f.inspect("wf-native", 1); in.State != chain.TransferMined || !in.Succeeded || in.Attempt.Hash != stx.Hash {
		t.Fatalf("native transfer: %+v", in)
	}
}

// TestNonceTakenDuringReplacement (defect 5, nonce taken during replacement:
// stuck for ever): another transaction from the wallet takes the nonce of a
// stuck transfer. Replace and Send say ErrNonceTooLow and sign nothing;
// Inspect says pending until the stranger is confirmations deep, then
// dropped, so the caller can release the payment.
func TestNonceTakenDuringReplacement(t *testing.T) {
	f := newChainFixture(t)
	const conf = 3
	req := f.request("wf-taken", 21)
	stuck := f.sendStuck(req)

	// The stranger: a self-transfer on the same nonce, signed outside payflow.
	foreign, err := types.SignNewTx(mustKey(t, senderKeyHex), types.LatestSignerForChainID(big.NewInt(simChainID)),
		&types.DynamicFeeTx{ChainID: big.NewInt(simChainID), Nonce: stuck.Nonce, GasTipCap: big.NewInt(1_000_000_000),
			GasFeeCap: maxFeeWei, Gas: 21000, To: &f.sender, Value: new(big.Int)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.client.SendTransaction(f.ctx, foreign); err != nil {
		t.Fatal(err)
	}
	f.sim.Commit()
	f.requireSuccess(foreign.Hash())

	if _, err := f.bc.Sender.Replace(f.ctx, req.WorkflowID, req.Step, 1); !errors.Is(err, chain.ErrNonceTooLow) {
		t.Fatalf("Replace after the nonce was taken: %v, want ErrNonceTooLow", err)
	}
	if _, err := f.bc.Sender.Send(f.ctx, req.WorkflowID, req.Step); !errors.Is(err, chain.ErrNonceTooLow) {
		t.Fatalf("Send after the nonce was taken: %v, want ErrNonceTooLow", err)
	}
	if n := f.count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); n != 1 {
		t.Fatalf("%d attempts stored, want only the original", n)
	}
	for depth := 1; depth < conf; depth++ {
		if in := f.inspect(req.WorkflowID, conf); in.State != chain.TransferPending {
			t.Fatalf("stranger %d deep: %+v, want pending", depth, in)
		}
		f.sim.Commit()
	}
	in := f.inspect(req.WorkflowID, conf)
	if in.State != chain.TransferDropped || in.Attempt.Hash != stuck.Hash ||
		!strings.Contains(in.Reason, "nonce 0 of "+evm.Lower(f.sender)+" was used by another transaction") {
		t.Fatalf("stranger %d deep: %+v, want dropped", conf, in)
	}
	if b := f.tokenBalance(recipient); b.Sign() != 0 {
		t.Fatalf("recipient holds %s, want nothing", b)
	}
}
