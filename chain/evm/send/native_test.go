package send_test

import (
	"errors"
	"math/big"
	"testing"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/send"

	"payflow/chain/evm/evmtest"
)

// TestSignNativeTopsUpWhatATransferNeeds: a wallet holding tokens and no
// ether is refused; a native transfer of MaxTransferFee from another wallet,
// signed once per step and drawn from that wallet's own nonce lane, makes
// the same token transfer signable, and it mines.
func TestSignNativeTopsUpWhatATransferNeeds(t *testing.T) {
	f := newChainFixture(t)
	sweep := f.Request("wf-sweep", 2_500_000)
	sweep.From, sweep.Step = f.Broke, "sweep-USDT"
	if _, err := f.BC.Signer.SignTransfer(f.Ctx, sweep); !errors.Is(err, chain.ErrInsufficientGas) {
		t.Fatalf("transfer from a wallet without ether: %v, want ErrInsufficientGas", err)
	}

	fee, err := f.BC.Fees.MaxTransferFee(f.Ctx, f.Token, f.Broke, evmtest.Recipient, sweep.Units)
	if err != nil {
		t.Fatal(err)
	}
	if fee.Sign() <= 0 {
		t.Fatalf("max transfer fee %s", fee)
	}
	// A token transfer from the sender first: the top-up takes the next nonce
	// of the same lane.
	f.SignAndSend(f.Request("wf-before", 1))
	req := send.NativeTransferRequest{WorkflowID: "wf-sweep", Step: "gas-topup", From: f.Sender, To: f.Broke, Wei: fee}
	first, err := f.BC.Signer.SignNative(f.Ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.BC.Signer.SignNative(f.Ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed || !again.Replayed || again.Hash != first.Hash {
		t.Fatalf("replay: first=%v/%s again=%v/%s", first.Replayed, first.Hash.Hex(), again.Replayed, again.Hash.Hex())
	}
	if first.Nonce != 1 || f.NextNonce(f.Sender) != 2 {
		t.Fatalf("top-up nonce %d, lane at %d; want 1 and 2", first.Nonce, f.NextNonce(f.Sender))
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-sweep' AND step='gas-topup' AND to_address=?",
		evm.Lower(f.Broke)); n != 1 {
		t.Fatalf("%d stored top-ups, want 1", n)
	}
	for i := 0; i < 2; i++ { // sending twice is harmless
		if _, err := f.BC.Sender.Send(f.Ctx, req.WorkflowID, req.Step); err != nil {
			t.Fatal(err)
		}
	}
	f.Sim.Commit()
	f.RequireSuccess(first.Hash)
	if got, err := f.Client.BalanceAt(f.Ctx, f.Broke, nil); err != nil || got.Cmp(fee) != 0 {
		t.Fatalf("topped-up wallet holds %v wei (%v), want %s", got, err, fee)
	}

	stx := f.SignAndSend(sweep)
	f.Sim.Commit()
	f.RequireSuccess(stx.Hash)
	if got, want := f.TokenBalance(evmtest.Recipient), new(big.Int).Add(sweep.Units, big.NewInt(1)); got.Cmp(want) != 0 {
		t.Fatalf("recipient holds %s, want %s", got, want) // the sweep and wf-before's 1 unit
	}
}

// TestSignNativeRefusesWhatCannotPay: no amount, or more than the sender
// holds, stores nothing and asks the signer nothing.
func TestSignNativeRefusesWhatCannotPay(t *testing.T) {
	f := newChainFixture(t)
	huge := new(big.Int).Exp(big.NewInt(10), big.NewInt(30), nil)
	for _, tc := range []struct {
		name string
		req  send.NativeTransferRequest
		want error
	}{
		{"zero", send.NativeTransferRequest{WorkflowID: "wf-zero", Step: "gas-topup", From: f.Sender, To: f.Broke,
			Wei: big.NewInt(0)}, chain.ErrBadAmount},
		{"more than held", send.NativeTransferRequest{WorkflowID: "wf-huge", Step: "gas-topup", From: f.Sender, To: f.Broke,
			Wei: huge}, chain.ErrInsufficientGas},
		{"nothing to pay gas with", send.NativeTransferRequest{WorkflowID: "wf-broke", Step: "gas-topup", From: f.Broke,
			To: f.Sender, Wei: big.NewInt(1)}, chain.ErrInsufficientGas},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.BC.Signer.SignNative(f.Ctx, tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", tc.req.WorkflowID); n != 0 {
				t.Fatalf("%d rows stored for a refused top-up", n)
			}
		})
	}
	if n := f.Signer.Calls.Load(); n != 0 {
		t.Fatalf("refused top-ups asked the signer %d times", n)
	}
}
