package integration

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/custody/signerapi"
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

	// The worker's gauges see it: BTC's node answers, and a payment is
	// stuck (unconfirmed past the chain's confirm_timeout).
	metricsURL := b.st.WorkerMetricsURLs()[0]
	require.Eventually(t, func() bool {
		m := scrape(t, metricsURL)
		return m[`payflow_node_up{chain="BTC"}`] == 1 && m[`payflow_stuck_payments{chain="BTC"}`] >= 1 &&
			m[`payflow_transfers_in_flight{chain="BTC"}`] >= 1 && m[`payflow_listener_head_block{chain="BTC"}`] > 0
	}, time.Minute, time.Second, "payflow_stuck_payments counts the stuck BTC payment")

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
	// The attempt that lost is followed no more once the withdraw is done.
	require.Eventually(t, func() bool {
		var open int
		return db.QueryRow("SELECT COUNT(*) FROM btc_tracked WHERE chain='BTC' AND workflow_id=? AND NOT done", wfID).Scan(&open) == nil &&
			open == 0
	}, 3*time.Minute, time.Second, "every attempt's tracking ends")
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

// TestBTCNewDepositAddressesDeriveFromTheSignersAccount: `payflowctl address
// new -chain BTC` and POST /v1/addresses/BTC hand out the next BIP84
// children of payflow-signer's Bitcoin account (derived from its xpub
// alone), registered as deposit wallets with their index. A deposit to one,
// watched by a topup, is announced 2 then 1 and kept in the UTXO set, and
// the set, the node and the ledger agree on it.
func TestBTCNewDepositAddressesDeriveFromTheSignersAccount(t *testing.T) {
	b := loadBTC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db := b.st.DB(t)
	c := buildCtl(t)
	out, errOut, code := c.exec(t, "", "address", "new", "-chain", "BTC", "-label", "it-btc-address",
		"-config", filepath.Join(c.dev, "config.json"), "-env-file", filepath.Join(c.dev, "payflow.env"))
	require.Zero(t, code, "payflowctl address new -chain BTC: %s %s", out, errOut)
	var first addressOut
	require.NoError(t, json.Unmarshal([]byte(out), &first), out)
	require.Equal(t, "BTC", first.Chain)
	require.NotNil(t, first.Index)

	acct, err := signerapi.NewClient(b.st.SignerSocket).BTCAccount(ctx, b.chain.Network)
	require.NoError(t, err)
	account, err := btc.NewAccount(acct.XPub, b.client.Params())
	require.NoError(t, err)
	want, err := account.Address(*first.Index)
	require.NoError(t, err)
	require.Equal(t, want, first.Address, "the signer's child at the index handed out")
	w, err := ledger.NewWallets(db, nil).Get(ctx, "BTC", first.Address)
	require.NoError(t, err)
	require.Equal(t, ledger.KindDeposit, w.Kind)
	require.Equal(t, *first.Index, *w.HDIndex)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.st.APIURL+"/v1/addresses/BTC", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.st.APIToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var second addressOut
	require.NoError(t, json.NewDecoder(res.Body).Decode(&second))
	require.Equal(t, http.StatusCreated, res.StatusCode)
	require.NotNil(t, second.Index)
	require.Greater(t, *second.Index, *first.Index)
	want, err = account.Address(*second.Index)
	require.NoError(t, err)
	require.Equal(t, want, second.Address)

	resp := b.st.Collect(t, topupResp, "address")
	b.topup(t, ctx, first.Address)
	tx, err := b.faucet.Pay(ctx, first.Address, 3_300_000)
	require.NoError(t, err)
	deps := resp.Wait(t, first.Address, 2, 3*time.Minute)
	require.Equal(t, []string{"2", "1"}, []string{fmt.Sprint(deps[0].Body["status"]), fmt.Sprint(deps[1].Body["status"])})
	require.Equal(t, tx.TxHash().String(), deps[1].Body["tx_hash"])
	b.requireSetEqualsNode(t, ctx, db, first.Address)
}
