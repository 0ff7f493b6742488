package chain_test

import (
	"bytes"
	"testing"
)

// TestSenderSendsTheStoredBytes: the sender puts on chain exactly what the
// store holds, however it was signed, marks it sent, and once it is mined
// reports that attempt as mined instead of failing on "nonce too low".
func TestSenderSendsTheStoredBytes(t *testing.T) {
	f := newChainFixture(t)
	signed := f.signedAt(0, maxFeeWei.Int64())
	if _, err := f.bc.Store.Insert(f.ctx, nil, "wf-send", "transfer", 0, f.sender, signed); err != nil {
		t.Fatal(err)
	}
	sent, err := f.bc.Sender.Send(f.ctx, "wf-send", "transfer")
	if err != nil {
		t.Fatal(err)
	}
	if sent.Hash != signed.Hash() || sent.Mined {
		t.Fatalf("sent %+v, want %s not yet mined", sent, signed.Hash().Hex())
	}
	if n := f.count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-send' AND state='sent'"); n != 1 {
		t.Fatal("not marked sent")
	}
	f.sim.Commit()
	r := f.requireSuccess(signed.Hash())
	onChain, _, err := f.client.TransactionByHash(f.ctx, signed.Hash())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := onChain.MarshalBinary()
	if !bytes.Equal(raw, sent.Raw) {
		t.Fatal("the chain holds other bytes than the store")
	}
	// The simulated pool drops a mined transaction when it processes the new
	// head, asynchronously (as geth's does): until then it answers "already
	// known" and Send reports the attempt sent, not mined. Either answer is
	// the same hash and no error; once the pool has caught up, it is mined.
	waitFor(t, func() bool {
		again, err := f.bc.Sender.Send(f.ctx, "wf-send", "transfer")
		if err != nil || again.Hash != signed.Hash() {
			t.Fatalf("Send after mining: %+v (%v), want the same attempt", again, err)
		}
		return again.Mined
	})
	if got, err := f.bc.Sender.Receipt(f.ctx, signed.Hash()); err != nil || got.BlockHash != r.BlockHash {
		t.Fatalf("Receipt: %v (%v)", got, err)
	}
}
