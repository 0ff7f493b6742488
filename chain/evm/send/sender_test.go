package send_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"payflow/chain/evm/evmtest"
)

// TestSenderSendsTheStoredBytes: the sender puts on chain exactly what the
// store holds, however it was signed, marks it sent, and once it is mined
// reports that attempt as mined instead of failing on "nonce too low".
func TestSenderSendsTheStoredBytes(t *testing.T) {
	f := newChainFixture(t)
	signed := f.SignedAt(0, evmtest.MaxFeeWei.Int64())
	if _, err := f.BC.Store.Insert(f.Ctx, nil, "wf-send", "transfer", 0, f.Sender, signed); err != nil {
		t.Fatal(err)
	}
	sent, err := f.BC.Sender.Send(f.Ctx, "wf-send", "transfer")
	if err != nil {
		t.Fatal(err)
	}
	if sent.Hash != signed.Hash() || sent.Mined {
		t.Fatalf("sent %+v, want %s not yet mined", sent, signed.Hash().Hex())
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-send' AND state='sent'"); n != 1 {
		t.Fatal("not marked sent")
	}
	f.Sim.Commit()
	r := f.RequireSuccess(signed.Hash())
	onChain, _, err := f.Client.TransactionByHash(f.Ctx, signed.Hash())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := onChain.MarshalBinary()
	if !bytes.Equal(raw, sent.Raw) {
		t.Fatal("the chain holds other bytes than the store")
	}
	f.sendUntilMined(t, "wf-send", "transfer", signed.Hash())
	if got, err := f.BC.Sender.Receipt(f.Ctx, signed.Hash()); err != nil || got.BlockHash != r.BlockHash {
		t.Fatalf("Receipt: %v (%v)", got, err)
	}
}

// sendUntilMined sends a step whose attempt hash was mined until Send
// reports it mined. The simulated pool drops a mined transaction when it
// processes the new head, asynchronously (as geth's does): until then it
// answers "already known" and Send reports the attempt sent, not mined.
// Every answer must be that attempt, without error.
func (f *chainFixture) sendUntilMined(t *testing.T, workflowID, step string, hash common.Hash) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := f.BC.Sender.Send(f.Ctx, workflowID, step)
		if err != nil || got.Hash != hash {
			t.Fatalf("Send after mining: %+v (%v), want attempt %s", got, err, hash.Hex())
		}
		if got.Mined {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("not reported mined in 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
