package send_test

import (
	"fmt"
	"testing"

	"payflow/chain/evm"

	"payflow/chain/evm/evmtest"
)

// benchCommitEvery is how many transfers wait in the pool before a block is
// mined: well under the pool's global slots, and 500 transfers fit one block.
const benchCommitEvery = 500

// BenchmarkBroadcasterSignAndSend signs and sends b.N transfers from one
// wallet, one after another, against the simulated backend, mining every
// benchCommitEvery. It reports signed and sent transfers per second
// (database round trips and key handling included), then checks the wallet's
// nonces are exactly 0..b.N-1, stored and on chain. Run with a fixed count,
// e.g. -benchtime 2000x: every run starts from a fresh chain and database.
func BenchmarkBroadcasterSignAndSend(b *testing.B) {
	f := newChainFixture(b)
	const units = 3
	nonces := make([]uint64, 0, b.N)

	b.ResetTimer()
	for i := range b.N {
		req := f.Request(fmt.Sprintf("wf-bench-%06d", i), units)
		stx, err := f.BC.Signer.SignTransfer(f.Ctx, req)
		if err != nil {
			b.Fatalf("signing %d: %v", i, err)
		}
		if _, err := f.BC.Sender.Send(f.Ctx, req.WorkflowID, req.Step); err != nil {
			b.Fatalf("sending %d: %v", i, err)
		}
		nonces = append(nonces, stx.Nonce)
		if (i+1)%benchCommitEvery == 0 {
			f.Sim.Commit()
		}
	}
	f.Sim.Commit()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")

	seen := make([]bool, b.N)
	for i, n := range nonces {
		if n >= uint64(b.N) || seen[n] {
			b.Fatalf("transfer %d got nonce %d: out of 0..%d or handed out twice", i, n, b.N-1)
		}
		seen[n] = true
	}
	rows, err := f.DB.QueryContext(f.Ctx, "SELECT nonce FROM signed_txs WHERE chain=? AND from_address=? ORDER BY nonce",
		evmtest.ChainName, evm.Lower(f.Sender))
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	next := uint64(0)
	for rows.Next() {
		var n uint64
		if err := rows.Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n != next {
			b.Fatalf("stored nonces go from %d to %d", int64(next)-1, n)
		}
		next++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if next != uint64(b.N) {
		b.Fatalf("%d stored transfers, want %d", next, b.N)
	}
	if n, err := f.Client.NonceAt(f.Ctx, f.Sender, nil); err != nil || n != uint64(b.N) {
		b.Fatalf("sender nonce on chain %d (%v), want %d: a transfer was not mined", n, err, b.N)
	}
	if got := f.TokenBalance(evmtest.Recipient); got.Int64() != int64(b.N)*units {
		b.Fatalf("recipient holds %s, want %d", got, int64(b.N)*units)
	}
}
