package btc_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/wire"
	"github.com/stretchr/testify/require"

	"payflow/chain"
	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

func testDB(t *testing.T, name string) *sql.DB {
	t.Helper()
	db := stacktest.TestDB(t, name)
	require.NoError(t, ledger.Migrate(context.Background(), db))
	return db
}

func fakeTxID(label string) string {
	h := sha256.Sum256([]byte(label))
	return hex.EncodeToString(h[:])
}

// TestMigrationWidensAddresses: a Bitcoin address longer than an EVM
// address (regtest's 44 characters, a 62-character taproot one) fits every
// ledger column a Bitcoin wallet uses.
func TestMigrationWidensAddresses(t *testing.T) {
	db := testDB(t, "btcaddr")
	ctx := context.Background()
	regtest := "bcrt1q" + strings.Repeat("q", 38)
	taproot := "bc1p" + strings.Repeat("q", 58)
	for _, a := range []string{regtest, taproot} {
		_, err := db.ExecContext(ctx, "INSERT INTO wallets (chain, address, kind) VALUES ('BTC', ?, 'deposit')", a)
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, "INSERT INTO balances (chain, address, symbol) VALUES ('BTC', ?, 'BTC')", a)
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, `INSERT INTO deposits (chain, tx_hash, log_index, symbol, address, from_address, amount, block_number, block_hash)
			VALUES ('BTC', ?, 0, 'BTC', ?, ?, 1, 1, 'h')`, fakeTxID(a), a, a)
		require.NoError(t, err)
		var got string
		require.NoError(t, db.QueryRowContext(ctx, "SELECT address FROM balances WHERE chain = 'BTC' AND address = ?", a).Scan(&got))
		require.Equal(t, a, got, "stored whole")
	}
}

// TestBlocksStore: the block log keeps what Save gives it, replaces a
// reorganised tail and forgets blocks below the window, per chain.
func TestBlocksStore(t *testing.T) {
	db := testDB(t, "btcblocks")
	ctx := context.Background()
	ref := func(h int64, label string) btc.BlockRef {
		return btc.BlockRef{Height: h, Hash: sha256.Sum256([]byte(label))}
	}
	log := btc.NewBlocks(db, "BTC")
	other := btc.NewBlocks(db, "BTC2")
	require.NoError(t, log.Save(ctx, 10, []btc.BlockRef{ref(10, "a"), ref(11, "b"), ref(12, "c")}, 10))
	require.NoError(t, other.Save(ctx, 10, []btc.BlockRef{ref(10, "z")}, 10))
	// 12 is reorganised away, 12' and 13' come; the window drops 10.
	require.NoError(t, log.Save(ctx, 12, []btc.BlockRef{ref(12, "c'"), ref(13, "d'")}, 11))
	got, err := log.Load(ctx)
	require.NoError(t, err)
	require.Equal(t, []btc.BlockRef{ref(11, "b"), ref(12, "c'"), ref(13, "d'")}, got)
	got, err = other.Load(ctx)
	require.NoError(t, err)
	require.Equal(t, []btc.BlockRef{ref(10, "z")}, got, "another chain's blocks are its own")
}

// TestUTXOLife: an output is unconfirmed, then spendable; reserved for one
// payment key (largest first, to cover the payment and its fee), the same
// coins again for a repeat of that key, none for a second payment that the
// rest cannot cover; released, reserved again and spent. The confirmed
// balance is the sum of spendable and reserved outputs throughout; a block
// that leaves the chain takes its spendable outputs back to unconfirmed.
func TestUTXOLife(t *testing.T) {
	db := testDB(t, "btcutxo")
	ctx := context.Background()
	set := btc.NewUTXOs(db, "BTC")
	const wallet = "sb1qwallet"
	add := func(label string, sats int64, block string) btc.UTXO {
		o := btc.UTXO{TxID: fakeTxID(label), Vout: 1, Address: wallet, Sats: sats}
		if block != "" {
			o.Height, o.BlockHash = 500, fakeTxID(block)
		}
		require.NoError(t, set.Add(ctx, o))
		return o
	}
	balance := func() (int64, int64) {
		c, u, err := set.Balance(ctx, wallet)
		require.NoError(t, err)
		return c, u
	}
	big, mid, small := add("big", 5_000_000, "b1"), add("mid", 3_000_000, "b1"), add("small", 1_000_000, "")
	require.NoError(t, set.Add(ctx, big), "a repeat is harmless")
	c, u := balance()
	require.Equal(t, [2]int64{0, 9_000_000}, [2]int64{c, u})
	for _, o := range []btc.UTXO{big, mid, small} {
		require.NoError(t, set.Confirm(ctx, o.TxID, o.Vout, 500, fakeTxID("b1")))
	}
	c, u = balance()
	require.Equal(t, [2]int64{9_000_000, 0}, [2]int64{c, u})

	fee := func(n int) int64 { return int64(btc.P2WPKHVSize(n, 2)) * 10 }
	need := func(sats int64) func(int) int64 { return func(n int) int64 { return sats + fee(n) } }
	held, err := set.Reserve(ctx, "pay-1", wallet, need(6_000_000))
	require.NoError(t, err)
	require.Equal(t, []string{big.TxID, mid.TxID}, txids(held), "largest first, until the payment and its fee are covered")
	again, err := set.Reserve(ctx, "pay-1", wallet, need(1))
	require.NoError(t, err)
	require.Equal(t, txids(held), txids(again), "a repeat of the key gets its coins")
	_, err = set.Reserve(ctx, "pay-2", wallet, need(2_000_000))
	require.ErrorIs(t, err, btc.ErrInsufficientCoins, "1,000,000 left")
	c, _ = balance()
	require.EqualValues(t, 9_000_000, c, "reserved coins are still the wallet's")

	n, err := set.Release(ctx, "pay-1")
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	n, err = set.Release(ctx, "pay-1")
	require.NoError(t, err)
	require.Zero(t, n, "released once")
	held, err = set.Reserve(ctx, "pay-2", wallet, need(2_000_000))
	require.NoError(t, err)
	require.Equal(t, []string{big.TxID}, txids(held))
	require.NoError(t, set.Spend(ctx, "pay-2", fakeTxID("spending")))
	c, _ = balance()
	require.EqualValues(t, 4_000_000, c, "a spent coin has left")
	n, err = set.Release(ctx, "pay-2")
	require.NoError(t, err)
	require.Zero(t, n, "a spent coin is never released")

	// Block b1 leaves the chain: mid (spendable) is unconfirmed again;
	// small, confirmed without a block of its own, keeps its state.
	n, err = set.Unconfirm(ctx, fakeTxID("b1"))
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	c, u = balance()
	require.Equal(t, [2]int64{0, 4_000_000}, [2]int64{c, u})
	list, err := set.List(ctx, wallet)
	require.NoError(t, err)
	require.Len(t, list, 2, "spent coins are not listed")
	for _, o := range list {
		require.Equal(t, btc.UTXOUnconfirmed, o.State)
		require.Empty(t, o.BlockHash)
	}
}

func txids(us []btc.UTXO) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.TxID
	}
	return out
}

// TestUTXOSetFromScannerReconciles: on a real btcd, the scanner's events
// keep a managed wallet's UTXO set (Apply; seen: unconfirmed, confirmed:
// spendable, with the block), and the set reconciles with the node: the
// same coins and balance. An output the set does not know (a deposit
// payflow missed) and a coin the node does not have are both found.
func TestUTXOSetFromScannerReconciles(t *testing.T) {
	n := btctest.Start(t)
	db := testDB(t, "btcreconcile")
	ctx := context.Background()
	wallet := addresses(t, n, "utxo set reconcile", 1)[0]
	watch := btc.NewWatchSet(n.Client.Params())
	_, err := watch.Add(wallet)
	require.NoError(t, err)
	head, _ := n.Head(t)
	s, err := btc.NewScanner(btc.ScannerConfig{Confirmations: 2, StartHeight: head + 1}, n.Client, watch, btc.NewBlocks(db, "BTC"), nil)
	require.NoError(t, err)
	set := btc.NewUTXOs(db, "BTC")
	apply := func() {
		evs, err := s.Poll(ctx)
		require.NoError(t, err)
		require.NoError(t, btc.Apply(ctx, set, evs))
		require.NoError(t, btc.Apply(ctx, set, evs), "a repeat is harmless")
	}
	_, err = n.Faucet.PayMany(ctx, []btc.Output{{Address: wallet, Sats: 70_000_000}, {Address: wallet, Sats: 30_000_000}})
	require.NoError(t, err)
	n.Mine(t, 1)
	apply()
	c, u, err := set.Balance(ctx, wallet)
	require.NoError(t, err)
	require.Equal(t, [2]int64{0, 100_000_000}, [2]int64{c, u})
	n.Mine(t, 1)
	apply()
	c, u, err = set.Balance(ctx, wallet)
	require.NoError(t, err)
	require.Equal(t, [2]int64{100_000_000, 0}, [2]int64{c, u})

	r, err := set.Reconcile(ctx, n.Client, wallet, 2)
	require.NoError(t, err)
	require.True(t, r.Matched(), "%+v", r)
	require.EqualValues(t, 100_000_000, r.Confirmed)
	require.EqualValues(t, 100_000_000, r.OnNode)

	// A deposit the set never heard of, and a coin the node never had.
	missed := n.Pay(t, wallet, 5_000_000)
	n.Mine(t, 2)
	ghost := btc.UTXO{TxID: fakeTxID("ghost"), Vout: 0, Address: wallet, Sats: 1_000}
	require.NoError(t, set.Add(ctx, ghost))
	require.NoError(t, set.Confirm(ctx, ghost.TxID, 0, 1, fakeTxID("ghost block")))
	r, err = set.Reconcile(ctx, n.Client, wallet, 2)
	require.NoError(t, err)
	require.False(t, r.Matched())
	require.Equal(t, []string{ghost.TxID}, txids(r.Missing))
	require.Len(t, r.Unknown, 1)
	require.Equal(t, missed, r.Unknown[0].Hash)
	require.EqualValues(t, 5_000_000, r.Unknown[0].Value)
	require.EqualValues(t, 100_001_000, r.Confirmed)
	require.EqualValues(t, 100_000_000, r.OnNode)
}

// TestScannerWatchesFromTheStore: the scanner loads the watched addresses
// from btc_watched at each poll. An address watched before a deposit is
// matched as the block is read; one watched at the head after the scanner
// read the deposit's block is read back from its height (seen, then
// confirmed by depth); one watched from below the scanner's window gets its
// old deposit seen and confirmed at once. A repeated watch keeps the first.
func TestScannerWatchesFromTheStore(t *testing.T) {
	n := btctest.Start(t)
	db := testDB(t, "btcwatched")
	ctx := context.Background()
	addrs := addresses(t, n, "scanner watched store", 3)
	watched := btc.NewWatched(db, "BTC")
	head, _ := n.Head(t)

	// addrs[2] is paid long before anyone watches it.
	old := n.Pay(t, addrs[2], 33_000).String()
	n.Mine(t, 1)
	oldHeight := head + 1
	n.Mine(t, 20)
	head, _ = n.Head(t)

	from, isNew, err := watched.Watch(ctx, addrs[0], head+1)
	require.NoError(t, err)
	require.True(t, isNew)
	require.Equal(t, head+1, from)
	s, err := btc.NewScanner(btc.ScannerConfig{Confirmations: 2, StartHeight: head + 1, Window: 5}, n.Client, btc.NewWatchSet(n.Client.Params()),
		btc.NewBlocks(db, "BTC"), watched)
	require.NoError(t, err)
	a0 := n.Pay(t, addrs[0], 10_000).String()
	n.Mine(t, 1)
	require.Equal(t, []eventKey{{btc.DepositSeen, a0, 0}}, keysOf(poll(t, s)))

	// addrs[1] is paid and its block read before its watch begins at that
	// height.
	a1 := n.Pay(t, addrs[1], 11_000).String()
	n.Mine(t, 1)
	require.Equal(t, []eventKey{{btc.DepositConfirmed, a0, 0}}, keysOf(poll(t, s)), "addrs[1] is not watched yet")
	tip, _ := n.Head(t)
	_, isNew, err = watched.Watch(ctx, addrs[1], tip)
	require.NoError(t, err)
	require.True(t, isNew)
	evs := poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositSeen, a1, 0}}, keysOf(evs), "read back from its height")
	require.EqualValues(t, 1, evs[0].Confirmations)
	n.Mine(t, 1)
	require.Equal(t, []eventKey{{btc.DepositConfirmed, a1, 0}}, keysOf(poll(t, s)), "confirmed once, by depth")

	// addrs[2], watched from below the window: its old deposit at once.
	_, _, err = watched.Watch(ctx, addrs[2], oldHeight)
	require.NoError(t, err)
	evs = poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositSeen, old, 0}, {btc.DepositConfirmed, old, 0}}, keysOf(evs))
	require.Equal(t, oldHeight, evs[0].Height)

	again, isNew, err := watched.Watch(ctx, addrs[2], tip+100)
	require.NoError(t, err)
	require.False(t, isNew)
	require.Equal(t, oldHeight, again, "the first watch is kept")
	n.Mine(t, 1)
	require.Empty(t, poll(t, s))
}

// signedSpend builds and signs a spend of one made-up coin at rate.
func signedSpend(t *testing.T, rate int64) (*wire.MsgTx, btc.Built) {
	t.Helper()
	params, _ := btc.Params("simnet")
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	a, err := btc.KeyAddress(key.PubKey(), params)
	require.NoError(t, err)
	in := []btc.UTXO{{TxID: fakeTxID("signed store coin"), Vout: 3, Address: a.EncodeAddress(), Sats: 1_000_000}}
	b, err := btc.BuildPSBT(btc.Spend{Inputs: in, Outputs: []btc.Output{{Address: a.EncodeAddress(), Sats: 400_000}},
		Change: a.EncodeAddress(), FeeRate: rate}, params)
	require.NoError(t, err)
	require.NoError(t, btc.SignPSBT(b.Packet, key, []int{0}, params))
	tx, err := btc.Finalize(b.Packet)
	require.NoError(t, err)
	return tx, b
}

// TestSignedTxsStoreOnce: the first transaction stored for an attempt wins
// (a retry that signed again gets it back, to send those bytes); attempts
// list in order and decode to what was signed; a step with none is
// chain.ErrNotSigned; workflow ids are any Unicode, compared exactly.
func TestSignedTxsStoreOnce(t *testing.T) {
	db := testDB(t, "btcsigned")
	ctx := context.Background()
	store := btc.NewSignedTxs(db, "BTC")
	const wf = "withdraw-订单-A1"
	first, b0 := signedSpend(t, 2)
	s0, err := store.Store(ctx, first, btc.SignedTx{WorkflowID: wf, Step: "transfer", FeeRate: 2, Fee: b0.Fee})
	require.NoError(t, err)
	require.Equal(t, first.TxHash().String(), s0.TxID)
	require.Equal(t, "signed", s0.State)

	resigned, b1 := signedSpend(t, 2) // another signature of the same step
	again, err := store.Store(ctx, resigned, btc.SignedTx{WorkflowID: wf, Step: "transfer", FeeRate: 2, Fee: b1.Fee})
	require.NoError(t, err)
	require.Equal(t, s0.TxID, again.TxID, "the first stored wins")

	bumped, b2 := signedSpend(t, 9)
	s1, err := store.Store(ctx, bumped, btc.SignedTx{WorkflowID: wf, Step: "transfer", Attempt: 1, FeeRate: 9, Fee: b2.Fee})
	require.NoError(t, err)
	require.NoError(t, store.MarkSent(ctx, s1.TxID))

	all, err := store.Attempts(ctx, wf, "transfer")
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, []string{s0.TxID, s1.TxID}, []string{all[0].TxID, all[1].TxID})
	require.Equal(t, []string{"signed", "sent"}, []string{all[0].State, all[1].State})
	require.EqualValues(t, 9, all[1].FeeRate)
	tx, err := all[1].Tx()
	require.NoError(t, err)
	require.Equal(t, bumped.TxHash(), tx.TxHash())
	require.Len(t, tx.TxIn[0].Witness, 2, "stored with its witness")

	_, err = store.Attempts(ctx, "withdraw-订单-a1", "transfer")
	require.ErrorIs(t, err, chain.ErrNotSigned, "another queue_id by case")
	_, err = btc.NewSignedTxs(db, "BTC2").Attempts(ctx, wf, "transfer")
	require.ErrorIs(t, err, chain.ErrNotSigned, "another chain's")
}

// TestUTXOReservationKeysAreExact: reservation keys carry queue_ids, any
// Unicode text: two keys that differ only by case hold their own coins.
func TestUTXOReservationKeysAreExact(t *testing.T) {
	db := testDB(t, "btcutxokeys")
	ctx := context.Background()
	set := btc.NewUTXOs(db, "BTC")
	const wallet = "sb1qkeys"
	for i, label := range []string{"one", "two"} {
		o := btc.UTXO{TxID: fakeTxID(label), Vout: uint32(i), Address: wallet, Sats: 1_000_000}
		require.NoError(t, set.Add(ctx, o))
		require.NoError(t, set.Confirm(ctx, o.TxID, o.Vout, 7, fakeTxID("block")))
	}
	need := func(int) int64 { return 500_000 }
	upper, err := set.Reserve(ctx, "pay-订单-A1", wallet, need)
	require.NoError(t, err)
	lower, err := set.Reserve(ctx, "pay-订单-a1", wallet, need)
	require.NoError(t, err)
	require.Len(t, upper, 1)
	require.Len(t, lower, 1)
	require.NotEqual(t, upper[0].TxID, lower[0].TxID, "each key holds its own coin")
	n, err := set.Release(ctx, "pay-订单-A1")
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the release frees its own key's coin only")
}
