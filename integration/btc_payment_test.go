package integration

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/ledger"
)

// btcWallet is the address of the dev Bitcoin wallet labelled label.
func btcWallet(t *testing.T, db *sql.DB, label string) string {
	t.Helper()
	w, err := ledger.NewWallets(db, nil).ByLabel(context.Background(), "BTC", label)
	require.NoError(t, err, "dev Bitcoin wallet %s", label)
	return w.Address
}

// externalBTCAddress is an address of a key payflow never saw.
func (b *btcStack) externalAddress(t *testing.T) string {
	t.Helper()
	wif, err := btc.NewWIF(b.client.Params())
	require.NoError(t, err)
	a, err := btc.WIFAddress(wif, b.client.Params())
	require.NoError(t, err)
	return a
}

// btcPayment publishes a signed withdraw (or a pay, with an order id) of
// amount BTC from → to and returns its queue id.
func (b *btcStack) publishPayment(t *testing.T, flow, from, to, amount string) string {
	t.Helper()
	qid := fmt.Sprintf("btc-%s-%d", flow, time.Now().UnixNano())
	key, extra := withdrawKey, ""
	if flow == "pay" {
		key, extra = "pay.auto.routing.key", fmt.Sprintf(`,"order_id":"o-%s"`, qid)
	}
	body := fmt.Sprintf(`{"queue_id":%q,"from_address":%q,"to_address":%q,"amount":%s,"chain":"BTC","symbol":"BTC","timestamp":%d%s}`,
		qid, from, to, amount, time.Now().Unix(), extra)
	b.st.Publish(t, key, []byte(body), true)
	return qid
}

// minedTx is a transaction on the node's best chain, decoded, with its depth.
func (b *btcStack) minedTx(t *testing.T, ctx context.Context, txid string) (*wire.MsgTx, int64) {
	t.Helper()
	h, err := chainhash.NewHashFromStr(txid)
	require.NoError(t, err)
	r, err := b.client.Tx(ctx, *h)
	require.NoError(t, err, "the node knows %s", txid)
	require.NotEmpty(t, r.BlockHash, "%s is mined", txid)
	raw, err := hex.DecodeString(r.Hex)
	require.NoError(t, err)
	tx := new(wire.MsgTx)
	require.NoError(t, tx.Deserialize(bytes.NewReader(raw)))
	return tx, int64(r.Confirmations)
}

// outputsTo sums what tx pays address.
func (b *btcStack) outputsTo(t *testing.T, tx *wire.MsgTx, address string) int64 {
	t.Helper()
	_, script, err := btc.ParseAddress(address, b.client.Params())
	require.NoError(t, err)
	var sum int64
	for _, o := range tx.TxOut {
		if bytes.Equal(o.PkScript, script) {
			sum += o.Value
		}
	}
	return sum
}

// ledgerBTC is address's BTC row in the ledger: available + held.
func ledgerBTC(t *testing.T, db *sql.DB, address string) decimal.Decimal {
	t.Helper()
	b, err := ledger.New(db).Balance(context.Background(), "BTC", address, "BTC")
	require.NoError(t, err)
	return b.Total()
}

// requireSetEqualsNode waits until address's UTXO set holds nothing
// unconfirmed and equals the node (every confirmed output unspent there,
// every unspent output of the node in the set), and the ledger's balance
// equals the set's confirmed balance.
func (b *btcStack) requireSetEqualsNode(t *testing.T, ctx context.Context, db *sql.DB, address string) {
	t.Helper()
	set := btc.NewUTXOs(db, "BTC")
	var last string
	ok := assertEventually(3*time.Minute, func() bool {
		confirmed, unconfirmed, err := set.Balance(ctx, address)
		if err != nil {
			last = err.Error()
			return false
		}
		r, err := set.Reconcile(ctx, b.client, address, int64(b.chain.Confirmations))
		if err != nil {
			last = err.Error()
			return false
		}
		l := ledgerBTC(t, db, address)
		last = fmt.Sprintf("set confirmed %d unconfirmed %d, missing %v unknown %v, ledger %s", confirmed, unconfirmed,
			r.Missing, r.Unknown, l)
		return unconfirmed == 0 && r.Matched() && l.Equal(decimal.New(confirmed, -btc.Decimals))
	})
	require.True(t, ok, "the UTXO set of %s equals the node and the ledger: %s", address, last)
}

func assertEventually(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Second) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestBTCWithdrawAndPayPaidWithChange: a withdraw and a pay from the dev
// hot wallet to an outside address are each paid by one transaction on the
// node, answered status=1 once, only after the chain's confirmations, with
// the exact amount to the recipient and the change back to the hot wallet;
// the ledger charged the amount and the transaction's fee and nothing else;
// at the end the hot wallet's UTXO set equals the node and the ledger.
func TestBTCWithdrawAndPayPaidWithChange(t *testing.T) {
	b := loadBTC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	db := b.st.DB(t)
	hot := btcWallet(t, db, "hot")
	b.requireSetEqualsNode(t, ctx, db, hot)
	for _, c := range []struct {
		flow, queue, amount string
		sats                int64
	}{
		{"withdraw", withdrawResp, "0.01234567", 1_234_567},
		{"pay", "pay.auto.return.queue", "0.5", 50_000_000},
	} {
		resp := b.st.Collect(t, c.queue, "queue_id")
		to := b.externalAddress(t)
		before := ledgerBTC(t, db, hot)
		qid := b.publishPayment(t, c.flow, hot, to, c.amount)
		got := resp.Wait(t, qid, 1, 4*time.Minute)[0]
		require.Equal(t, "1", fmt.Sprint(got.Body["status"]), "%s: %v", c.flow, got.Body["error"])
		require.Equal(t, c.amount, fmt.Sprint(got.Body["amount"]))
		txid := fmt.Sprint(got.Body["tx_hash"])

		tx, depth := b.minedTx(t, ctx, txid)
		require.GreaterOrEqual(t, depth, int64(b.chain.Confirmations), "answered after the confirmations")
		require.Equal(t, c.sats, b.outputsTo(t, tx, to), "the recipient gets the exact amount")
		change := b.outputsTo(t, tx, hot)
		require.Positive(t, change, "the change returns to the hot wallet")
		require.Len(t, tx.TxOut, 2, "one payment output and the change")

		// The fee the ledger charged is the transaction's: inputs − outputs.
		var fee int64
		require.NoError(t, db.QueryRow("SELECT fee FROM btc_signed WHERE chain='BTC' AND txid=?", txid).Scan(&fee))
		var in int64
		for _, ti := range tx.TxIn {
			prev, _ := b.minedTx(t, ctx, ti.PreviousOutPoint.Hash.String())
			in += prev.TxOut[ti.PreviousOutPoint.Index].Value
		}
		require.Equal(t, in-c.sats-change, fee, "the stored fee is the transaction's")
		require.Eventually(t, func() bool {
			return before.Sub(ledgerBTC(t, db, hot)).Equal(decimal.New(c.sats+fee, -btc.Decimals))
		}, time.Minute, time.Second, "the ledger charged %d satoshis and the fee %d", c.sats, fee)

		time.Sleep(quietInterval)
		require.Len(t, resp.Get(qid), 1, "answered once")
	}
	b.requireSetEqualsNode(t, ctx, db, hot)
}

// TestBTCStuckPaymentReplacedOneAttemptConfirms: with the stack's miner
// paused, a withdraw's transaction waits in the node's pool past the
// chain's confirm_timeout and is replaced (BIP125) by an attempt spending
// the same inputs at a higher fee, which takes the first's place in the
// pool. Once the miner runs again, exactly one attempt is mined, the
// withdraw is answered status=1 once with it, the ledger charges that
// attempt's fee, and the hot wallet's set equals the node.
func TestBTCStuckPaymentReplacedOneAttemptConfirms(t *testing.T) {
	b := loadBTC(t)
	pause := b.st.Chains["BTC"].MinerPauseFile
	require.NotEmpty(t, pause, "stack.json names the miner's pause file (`make up` writes it)")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	db := b.st.DB(t)
	hot := btcWallet(t, db, "hot")
	b.requireSetEqualsNode(t, ctx, db, hot)
	resp := b.st.Collect(t, withdrawResp, "queue_id")
	before := ledgerBTC(t, db, hot)

	require.NoError(t, os.WriteFile(pause, nil, 0o644))
	t.Cleanup(func() { _ = os.Remove(pause) })
	time.Sleep(4 * time.Second) // a generate already under way ends
	to := b.externalAddress(t)
	qid := b.publishPayment(t, "withdraw", hot, to, "0.0202")
	wfID := "withdraw-" + qid

	type attempt struct {
		txid string
		fee  int64
		tx   *wire.MsgTx
	}
	var atts []attempt
	require.True(t, assertEventually(4*time.Minute, func() bool {
		rows, err := db.Query("SELECT txid, fee, raw FROM btc_signed WHERE chain='BTC' AND workflow_id=? ORDER BY attempt", wfID)
		if err != nil {
			return false
		}
		defer rows.Close()
		atts = atts[:0]
		for rows.Next() {
			var a attempt
			var raw []byte
			if rows.Scan(&a.txid, &a.fee, &raw) != nil {
				return false
			}
			a.tx = new(wire.MsgTx)
			if a.tx.Deserialize(bytes.NewReader(raw)) != nil {
				return false
			}
			atts = append(atts, a)
		}
		return len(atts) >= 2
	}), "the stuck withdraw is replaced (attempts: %d)", len(atts))
	require.Empty(t, resp.Get(qid), "nothing is answered while no block is mined")
	first, second := atts[0], atts[1]
	require.Greater(t, second.fee, first.fee, "the replacement pays more")
	require.Equal(t, outpointSet(first.tx), outpointSet(second.tx), "every attempt spends the same inputs")
	require.Equal(t, b.outputsTo(t, first.tx, to), b.outputsTo(t, second.tx, to), "and pays the same amount")
	require.Eventually(t, func() bool {
		h, _ := chainhash.NewHashFromStr(second.txid)
		r, err := b.client.Tx(ctx, *h)
		return err == nil && r.BlockHash == ""
	}, time.Minute, time.Second, "the replacement is in the node's pool")
	h0, _ := chainhash.NewHashFromStr(first.txid)
	_, err := b.client.Tx(ctx, *h0)
	require.True(t, btc.IsNotFound(err), "the first attempt left the pool: %v", err)

	require.NoError(t, os.Remove(pause))
	got := resp.Wait(t, qid, 1, 4*time.Minute)[0]
	require.Equal(t, "1", fmt.Sprint(got.Body["status"]), "%v", got.Body["error"])
	paid := fmt.Sprint(got.Body["tx_hash"])
	var mined []string
	var fee int64
	for _, a := range atts {
		h, _ := chainhash.NewHashFromStr(a.txid)
		if r, err := b.client.Tx(ctx, *h); err == nil && r.BlockHash != "" {
			mined, fee = append(mined, a.txid), a.fee
		}
	}
	require.Equal(t, []string{paid}, mined, "exactly one attempt is mined: the one answered")
	require.Equal(t, int64(2_020_000), b.outputsTo(t, b.mustTx(t, ctx, paid), to))
	require.Eventually(t, func() bool {
		return before.Sub(ledgerBTC(t, db, hot)).Equal(decimal.New(2_020_000+fee, -btc.Decimals))
	}, time.Minute, time.Second, "the ledger charged the amount and the mined attempt's fee %d", fee)
	time.Sleep(quietInterval)
	require.Len(t, resp.Get(qid), 1, "answered once")
	b.requireSetEqualsNode(t, ctx, db, hot)
}

func (b *btcStack) mustTx(t *testing.T, ctx context.Context, txid string) *wire.MsgTx {
	tx, _ := b.minedTx(t, ctx, txid)
	return tx
}

func outpointSet(tx *wire.MsgTx) []string {
	var out []string
	for _, in := range tx.TxIn {
		out = append(out, in.PreviousOutPoint.String())
	}
	slices.Sort(out)
	return out
}

