package evm_test

import (
	"errors"
	"math/big"
	"testing"

	"payflow/chain"
	"payflow/chain/evm"
)

// TestSignNativeTopsUpWhatATransferNeeds: a wallet holding tokens and no
// ether is refused; a native transfer of MaxTransferFee from another wallet,
// signed once per step and drawn from that wallet's own nonce lane, makes
// the same token transfer signable, and it mines.
func TestSignNativeTopsUpWhatATransferNeeds(t *testing.T) {
	f := newChainFixture(t)
	sweep := f.request("wf-sweep", 2_500_000)
	sweep.From, sweep.Step = f.broke, "sweep-USDT"
	if _, err := f.bc.Signer.SignTransfer(f.ctx, sweep); !errors.Is(err, chain.ErrInsufficientGas) {
		t.Fatalf("transfer from a wallet without ether: %v, want ErrInsufficientGas", err)
	}

	fee, err := f.bc.Fees.MaxTransferFee(f.ctx, f.token, f.broke, recipient, sweep.Units)
	if err != nil {
		t.Fatal(err)
	}
	if fee.Sign() <= 0 {
		t.Fatalf("max transfer fee %s", fee)
	}
	// A token transfer from the sender first: the top-up takes the next nonce
	// of the same lane.
	f.signAndSend(f.request("wf-before", 1))
	req := evm.NativeTransferRequest{WorkflowID: "wf-sweep", Step: "gas-topup", From: f.sender, To: f.broke, Wei: fee}
	first, err := f.bc.Signer.SignNative(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.bc.Signer.SignNative(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed || !again.Replayed || again.Hash != first.Hash {
		t.Fatalf("replay: first=%v/%s again=%v/%s", first.Replayed, first.Hash.Hex(), again.Replayed, again.Hash.Hex())
	}
	if first.Nonce != 1 || f.nextNonce(f.sender) != 2 {
		t.Fatalf("top-up nonce %d, lane at %d; want 1 and 2", first.Nonce, f.nextNonce(f.sender))
	}
	if n := f.count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-sweep' AND step='gas-topup' AND to_address=?",
		evm.Lower(f.broke)); n != 1 {
		t.Fatalf("%d stored top-ups, want 1", n)
	}
	for i := 0; i < 2; i++ { // sending twice is harmless
		if _, err := f.bc.Sender.Send(f.ctx, req.WorkflowID, req.Step); err != nil {
			t.Fatal(err)
		}
	}
	f.sim.Commit()
	f.requireSuccess(first.Hash)
	if got, err := f.client.BalanceAt(f.ctx, f.broke, nil); err != nil || got.Cmp(fee) != 0 {
		t.Fatalf("topped-up wallet holds %v wei (%v), want %s", got, err, fee)
	}

	stx := f.signAndSend(sweep)
	f.sim.Commit()
	f.requireSuccess(stx.Hash)
	if got, want := f.tokenBalance(recipient), new(big.Int).Add(sweep.Units, big.NewInt(1)); got.Cmp(want) != 0 {
		t.Fatalf("recipient holds %s, want %s", got, want) // the sweep and wf-before's 1 unit
	}
}

// TestSignNativeRefusesWhatCannotPay: no amount, or more than the sender
// holds, stores nothing and opens no key.
func TestSignNativeRefusesWhatCannotPay(t *testing.T) {
	f := newChainFixture(t)
	huge := new(big.Int).Exp(big.NewInt(10), big.NewInt(30), nil)
	for _, tc := range []struct {
		name string
		req  evm.NativeTransferRequest
		want error
	}{
		{"zero", evm.NativeTransferRequest{WorkflowID: "wf-zero", Step: "gas-topup", From: f.sender, To: f.broke,
			Wei: big.NewInt(0)}, chain.ErrBadAmount},
		{"more than held", evm.NativeTransferRequest{WorkflowID: "wf-huge", Step: "gas-topup", From: f.sender, To: f.broke,
			Wei: huge}, chain.ErrInsufficientGas},
		{"nothing to pay gas with", evm.NativeTransferRequest{WorkflowID: "wf-broke", Step: "gas-topup", From: f.broke,
			To: f.sender, Wei: big.NewInt(1)}, chain.ErrInsufficientGas},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.bc.Signer.SignNative(f.ctx, tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if n := f.count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", tc.req.WorkflowID); n != 0 {
				t.Fatalf("%d rows stored for a refused top-up", n)
			}
		})
	}
	if n := f.keys.calls.Load(); n != 0 {
		t.Fatalf("refused top-ups opened a key %d times", n)
	}
}
