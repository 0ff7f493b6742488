package ledger_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"payflow/ledger"
)

// addWallet stores a wallet row with or without a key (a key needs the
// master key; the SQL stands in for Import here).
func addWallet(t *testing.T, l *ledger.Ledger, chain, address, kind, label string, withKey bool) {
	t.Helper()
	var key []byte
	holder := ledger.KeyNone
	if withKey {
		key, holder = []byte{1}, ledger.KeyMaster
	}
	if _, err := l.DB().ExecContext(ctx, "INSERT INTO wallets (chain, address, kind, label, enc_key, key_holder) VALUES (?,?,?,?,?,?)",
		chain, address, kind, label, key, holder); err != nil {
		t.Fatal(err)
	}
}

func addr(n int) string { return "0x" + leftPad(n) }

func leftPad(n int) string {
	s := []byte("0000000000000000000000000000000000000000")
	for i := len(s) - 1; n > 0; i-- {
		s[i] = "0123456789abcdef"[n%16]
		n /= 16
	}
	return string(s)
}

// The reservation key column says what it holds: a fresh database has
// reservation_key and no queue_id, and a reservation is found by its key.
func TestReservationsAreKeyedByReservationKey(t *testing.T) {
	l, db := newLedger(t)
	var cols []string
	rows, err := db.QueryContext(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = DATABASE() AND table_name = 'reservations' ORDER BY ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	if !slices.Contains(cols, "reservation_key") || slices.Contains(cols, "queue_id") || !slices.Contains(cols, "workflow_id") {
		t.Fatalf("reservations columns %v: want reservation_key and workflow_id, no queue_id", cols)
	}
	book(t, l, wallet, "10")
	if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: "gas:pay-1/transfer", Chain: chainETH, Address: wallet,
		Symbol: usdt, Amount: d("4"), WorkflowID: "pay-1"}); err != nil {
		t.Fatal(err)
	}
	r, err := l.GetReservation(ctx, "gas:pay-1/transfer")
	if err != nil || r.State != "held" || !r.Amount.Equal(d("4")) {
		t.Fatalf("reservation %+v, %v", r, err)
	}
	var key, wf string
	if err := db.QueryRowContext(ctx, "SELECT reservation_key, workflow_id FROM reservations").Scan(&key, &wf); err != nil ||
		key != "gas:pay-1/transfer" || wf != "pay-1" {
		t.Fatalf("row (%q, %q), %v", key, wf, err)
	}
}

func TestWalletReads(t *testing.T) {
	l, _ := newLedger(t)
	w := ledger.NewWallets(l.DB(), nil)
	addWallet(t, l, chainETH, addr(1), "hot", "hot", true)
	addWallet(t, l, chainETH, addr(2), "gas", "gas", true)
	addWallet(t, l, "BSC", addr(3), "hot", "hot", true)
	addWallet(t, l, chainETH, addr(4), "deposit", "user-1", false)

	kinds, err := w.KindsOf(ctx, chainETH, []string{strings.ToUpper(addr(1)), addr(2), addr(3), addr(9)})
	if err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 2 || kinds[addr(1)] != ledger.KindHot || kinds[addr(2)] != ledger.KindGas {
		t.Fatalf("KindsOf = %v: want hot and gas (keys lowercase), not BSC's wallet or a stranger", kinds)
	}
	if kinds, err := w.KindsOf(ctx, chainETH, nil); err != nil || len(kinds) != 0 {
		t.Fatalf("KindsOf(nil) = %v, %v", kinds, err)
	}

	got, last, err := w.AddressesAfter(ctx, chainETH, 0, 2)
	if err != nil || !slices.Equal(got, []string{addr(1), addr(2)}) {
		t.Fatalf("first page %v, %v", got, err)
	}
	got, last2, err := w.AddressesAfter(ctx, chainETH, last, 2)
	if err != nil || !slices.Equal(got, []string{addr(4)}) || last2 <= last {
		t.Fatalf("second page %v (last %d after %d), %v", got, last2, last, err)
	}
	got, last3, err := w.AddressesAfter(ctx, chainETH, last2, 2)
	if err != nil || len(got) != 0 || last3 != last2 {
		t.Fatalf("past the end %v (last %d, want %d), %v", got, last3, last2, err)
	}

	u, err := w.ByLabel(ctx, chainETH, "user-1")
	if err != nil || u.Address != addr(4) || u.Kind != ledger.KindDeposit || u.HasKey {
		t.Fatalf("ByLabel = %+v, %v", u, err)
	}
	if _, err := w.ByLabel(ctx, "BSC", "user-1"); !errors.Is(err, ledger.ErrWalletNotFound) {
		t.Fatalf("ByLabel on another chain: %v", err)
	}

	// Addresses: wallets and balance holders, once each, in order, paged.
	book(t, l, addr(5), "1")
	book(t, l, addr(1), "1")
	all, err := l.Addresses(ctx, chainETH, "", 10)
	if err != nil || !slices.Equal(all, []string{addr(1), addr(2), addr(4), addr(5)}) {
		t.Fatalf("Addresses = %v, %v", all, err)
	}
	page, err := l.Addresses(ctx, chainETH, addr(2), 1)
	if err != nil || !slices.Equal(page, []string{addr(4)}) {
		t.Fatalf("Addresses after %s = %v, %v", addr(2), page, err)
	}
}

// book booked amount of USDT to address on ETH.
func book(t *testing.T, l *ledger.Ledger, address, amount string) {
	t.Helper()
	bookSym(t, l, address, usdt, amount)
}

var booked int

func bookSym(t *testing.T, l *ledger.Ledger, address, symbol, amount string) {
	t.Helper()
	booked++
	if _, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: address, Symbol: symbol, Amount: d(amount),
		TxHash: "0x" + leftPad(booked) + leftPad(0)[:24], LogIndex: 0}); err != nil {
		t.Fatal(err)
	}
}

func TestDepositWalletsAboveAndJournalSum(t *testing.T) {
	l, _ := newLedger(t)
	addWallet(t, l, chainETH, addr(1), "deposit", "", true)
	addWallet(t, l, chainETH, addr(2), "deposit", "", true)
	addWallet(t, l, chainETH, addr(3), "deposit", "", false) // no key: cannot be swept
	addWallet(t, l, chainETH, addr(4), "hot", "", true)      // not a deposit wallet
	for _, a := range []string{addr(1), addr(2), addr(3), addr(4)} {
		book(t, l, a, "20")
	}
	bookSym(t, l, addr(2), symETH, "0.5")
	bookSym(t, l, addr(1), symETH, "0.01")

	above := []ledger.Threshold{{Symbol: usdt, Amount: d("10")}, {Symbol: symETH, Amount: d("0.1")}}
	got, err := l.DepositWalletsAbove(ctx, ledger.SweepQuery{Chain: chainETH, Above: above, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Holding{{Address: addr(1), Symbols: []string{usdt}}, {Address: addr(2), Symbols: []string{symETH, usdt}}}
	if len(got) != len(want) || got[0].Address != want[0].Address || !slices.Equal(got[0].Symbols, want[0].Symbols) ||
		got[1].Address != want[1].Address || !slices.Equal(got[1].Symbols, want[1].Symbols) {
		t.Fatalf("DepositWalletsAbove = %+v, want %+v", got, want)
	}
	got, err = l.DepositWalletsAbove(ctx, ledger.SweepQuery{Chain: chainETH, Above: above, After: addr(1), Limit: 10})
	if err != nil || len(got) != 1 || got[0].Address != addr(2) {
		t.Fatalf("after %s: %+v, %v", addr(1), got, err)
	}
	got, err = l.DepositWalletsAbove(ctx, ledger.SweepQuery{Chain: chainETH, Above: above, Addresses: []string{addr(2)}, Limit: 10})
	if err != nil || len(got) != 1 || got[0].Address != addr(2) {
		t.Fatalf("of %s only: %+v, %v", addr(2), got, err)
	}

	if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: "w1", Chain: chainETH, Address: addr(4), Symbol: usdt,
		Amount: d("5"), WorkflowID: "w1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Settle(ctx, "w1", "0x"+leftPad(77)+leftPad(0)[:24]); err != nil {
		t.Fatal(err)
	}
	sum, err := l.JournalSum(ctx, chainETH, addr(4), usdt)
	if err != nil || !sum.Equal(d("15")) {
		t.Fatalf("JournalSum = %s, %v; want 15 (20 credited, 5 settled)", sum, err)
	}
}

func TestMismatchesAndDeposits(t *testing.T) {
	l, _ := newLedger(t)
	if latest, total, err := l.Mismatches(ctx, chainETH); err != nil || latest != 0 || total != 0 {
		t.Fatalf("no runs: %d, %d, %v", latest, total, err)
	}
	for _, r := range []ledger.Reconciliation{
		recon("run-1", addr(1), usdt, "1", "2", ledger.ReconMismatch),
		recon("run-1", addr(2), usdt, "1", "2", ledger.ReconMismatch),
		recon("run-2", addr(1), usdt, "1", "1", ledger.ReconMatched),
	} {
		if err := l.RecordReconciliation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if latest, total, err := l.Mismatches(ctx, chainETH); err != nil || latest != 0 || total != 2 {
		t.Fatalf("Mismatches = %d, %d, %v; want 0 in the latest run, 2 in all", latest, total, err)
	}

	deps := ledger.NewDeposits(l.DB())
	tx := "0x" + leftPad(5) + leftPad(0)[:24]
	if _, _, found, err := deps.Block(ctx, chainETH, tx, 1); err != nil || found {
		t.Fatalf("unrecorded deposit: found %v, %v", found, err)
	}
	seen := ledger.SeenDeposit{Chain: chainETH, TxHash: tx, LogIndex: 1, Symbol: usdt, Address: addr(1), From: addr(2),
		Amount: d("3"), BlockNumber: 10, BlockHash: blockHash}
	if err := deps.Record(ctx, seen); err != nil {
		t.Fatal(err)
	}
	seen.BlockNumber, seen.BlockHash = 12, "0x"+leftPad(12)+leftPad(0)[:24]
	if err := deps.Record(ctx, seen); err != nil { // mined again after a reorg
		t.Fatal(err)
	}
	n, h, found, err := deps.Block(ctx, chainETH, tx, 1)
	if err != nil || !found || n != 12 || h != seen.BlockHash {
		t.Fatalf("Block = %d %s %v %v; want the later block", n, h, found, err)
	}
}
