package ledger_test

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"payflow/ledger"
)

const blockHash = "0x00000000000000000000000000000000000000000000000000000000000000aa"

func recon(run, addr, symbol, ledgerTotal, chainBalance string, status ledger.ReconStatus) ledger.Reconciliation {
	return ledger.Reconciliation{RunID: run, Chain: chainETH, Address: addr, Symbol: symbol, BlockNumber: 100,
		BlockHash: blockHash, LedgerTotal: d(ledgerTotal), ChainBalance: d(chainBalance), Status: status}
}

func reconPageAll(t *testing.T, l *ledger.Ledger, q ledger.ReconQuery) []ledger.Reconciliation {
	t.Helper()
	var out []ledger.Reconciliation
	for pages := 1; ; pages++ {
		if pages > 100 {
			t.Fatal("cursor chain does not end")
		}
		p, err := l.Reconciliations(ctx, q)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		out = append(out, p.Reconciliations...)
		if p.NextCursor == "" {
			return out
		}
		q.Cursor = p.NextCursor
	}
}

func runIDs(rs []ledger.Reconciliation) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.RunID+"/"+r.Address[:6]+"/"+r.Symbol)
	}
	return out
}

func TestReconciliationsRecordIdempotentlyAndPage(t *testing.T) {
	l, db := newLedger(t)
	// Run 1 on a frozen clock: its three rows share created_at, so pages
	// must break the tie by id.
	frozen := frozenClockLedger(t, db, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
	a, b := mixedCase, wallet
	mis := recon("run-1", b, usdt, "50", "49.5", ledger.ReconMismatch)
	mis.Unmatched = []ledger.UnmatchedTransfer{{Side: ledger.SideLedgerOnly, TxHash: "0xAB" + strings.Repeat("0", 62),
		LogIndex: 2, BlockNumber: 99, Amount: d("0.5")}}
	for _, r := range []ledger.Reconciliation{
		recon("run-1", a, usdt, "100.000000000000000001", "100.000000000000000001", ledger.ReconMatched),
		mis,
		recon("run-1", a, symETH, "0", "0", ledger.ReconMatched),
	} {
		if err := frozen.RecordReconciliation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	run2 := recon("run-2", a, usdt, "100", "101", ledger.ReconMismatch)
	run2.Unmatched = []ledger.UnmatchedTransfer{{Side: ledger.SideChainOnly, TxHash: txHash(7), LogIndex: 0, BlockNumber: 100, Amount: d("1")}}
	if err := l.RecordReconciliation(ctx, run2); err != nil {
		t.Fatal(err)
	}
	other := recon("run-2", a, usdt, "1", "1", ledger.ReconMatched)
	other.Chain = "BSC"
	if err := l.RecordReconciliation(ctx, other); err != nil {
		t.Fatal(err)
	}

	t.Run("re-record is a no-op", func(t *testing.T) {
		again := mis
		again.Address = "0x" + strings.ToUpper(b[2:])
		again.Difference = d("-0.5") // given and right: accepted
		if err := l.RecordReconciliation(ctx, again); err != nil {
			t.Fatalf("re-record: %v", err)
		}
		if err := l.RecordReconciliation(ctx, run2); err != nil {
			t.Fatalf("re-record: %v", err)
		}
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM reconciliations").Scan(&n); err != nil || n != 5 {
			t.Fatalf("%d rows (%v), want 5", n, err)
		}
	})
	t.Run("conflicting re-record keeps the first", func(t *testing.T) {
		changed := run2
		changed.ChainBalance = d("100")
		changed.Status = ledger.ReconMatched
		if err := l.RecordReconciliation(ctx, changed); !errors.Is(err, ledger.ErrReconConflict) {
			t.Fatalf("err = %v, want ErrReconConflict", err)
		}
		var status string
		if err := db.QueryRow("SELECT status FROM reconciliations WHERE run_id='run-2' AND chain=?", chainETH).Scan(&status); err != nil || status != "mismatch" {
			t.Fatalf("stored status %q (%v)", status, err)
		}
	})
	t.Run("invalid results", func(t *testing.T) {
		for name, mut := range map[string]func(*ledger.Reconciliation){
			"pending status":    func(r *ledger.Reconciliation) { r.Status = "pending" },
			"wrong difference":  func(r *ledger.Reconciliation) { r.Difference = d("3") },
			"19 decimal places": func(r *ledger.Reconciliation) { r.ChainBalance = d("1.0000000000000000001") },
			"no run id":         func(r *ledger.Reconciliation) { r.RunID = "" },
			"unknown side": func(r *ledger.Reconciliation) {
				r.Unmatched = []ledger.UnmatchedTransfer{{Side: "both", TxHash: txHash(1)}}
			},
		} {
			r := recon("run-bad", a, usdt, "1", "2", ledger.ReconMismatch)
			mut(&r)
			if err := l.RecordReconciliation(ctx, r); !errors.Is(err, ledger.ErrBadRecon) {
				t.Errorf("%s: err = %v, want ErrBadRecon", name, err)
			}
		}
	})

	// Newest first: run 2 (real clock), then run 1's tied rows by id, descending.
	want := []string{"run-2/0xabcd/USDT", "run-1/0xabcd/ETH", "run-1/0x1111/USDT", "run-1/0xabcd/USDT"}
	t.Run("all, one per page", func(t *testing.T) {
		got := reconPageAll(t, l, ledger.ReconQuery{Chain: chainETH, Limit: 1})
		if !slices.Equal(runIDs(got), want) {
			t.Fatalf("got %v, want %v", runIDs(got), want)
		}
		p, err := l.Reconciliations(ctx, ledger.ReconQuery{Chain: chainETH})
		if err != nil || len(p.Reconciliations) != 4 || p.NextCursor != "" {
			t.Fatalf("default limit: %d rows, cursor %q, %v", len(p.Reconciliations), p.NextCursor, err)
		}
		// Figures and unmatched transfers round-trip; difference is computed.
		r := got[2]
		if !r.Difference.Equal(d("-0.5")) || !r.LedgerTotal.Equal(d("50")) || r.Status != ledger.ReconMismatch ||
			r.BlockNumber != 100 || r.BlockHash != blockHash || r.CreatedAt.IsZero() || r.ID == 0 {
			t.Fatalf("stored %+v", r)
		}
		if len(r.Unmatched) != 1 || r.Unmatched[0].TxHash != "0xab"+strings.Repeat("0", 62) ||
			!r.Unmatched[0].Amount.Equal(d("0.5")) || r.Unmatched[0].Side != ledger.SideLedgerOnly || r.Unmatched[0].LogIndex != 2 {
			t.Fatalf("unmatched %+v", r.Unmatched)
		}
		if got[3].Unmatched != nil || !got[3].LedgerTotal.Equal(d("100.000000000000000001")) {
			t.Fatalf("matched row %+v", got[3])
		}
	})
	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			q    ledger.ReconQuery
			want []string
		}{
			{ledger.ReconQuery{Chain: chainETH, Status: ledger.ReconMismatch, Limit: 1}, []string{want[0], want[2]}},
			{ledger.ReconQuery{Chain: chainETH, Status: ledger.ReconMatched, Limit: 1}, []string{want[1], want[3]}},
			{ledger.ReconQuery{Chain: chainETH, Address: "0x" + strings.ToUpper(a[2:]), Limit: 2}, []string{want[0], want[1], want[3]}},
			{ledger.ReconQuery{Chain: chainETH, Address: a, Status: ledger.ReconMismatch}, []string{want[0]}},
			{ledger.ReconQuery{Chain: "BSC"}, []string{"run-2/0xabcd/USDT"}},
		} {
			if got := runIDs(reconPageAll(t, l, tc.q)); !slices.Equal(got, tc.want) {
				t.Errorf("%+v: got %v, want %v", tc.q, got, tc.want)
			}
		}
	})
	t.Run("bad queries", func(t *testing.T) {
		historyCursor := base64.RawURLEncoding.EncodeToString([]byte("j1:1700000000000000:5"))
		for _, q := range []ledger.ReconQuery{
			{Chain: chainETH, Cursor: historyCursor},
			{Chain: chainETH, Cursor: "%%%"},
			{Chain: chainETH, Status: "pending"},
			{Chain: chainETH, Limit: 5000},
			{},
		} {
			if _, err := l.Reconciliations(ctx, q); !errors.Is(err, ledger.ErrInvalidQuery) {
				t.Errorf("%+v: err = %v, want ErrInvalidQuery", q, err)
			}
		}
	})
}
