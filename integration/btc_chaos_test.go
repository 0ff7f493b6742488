package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
)

// TestBTCNodeKilledMidBurstLosesNothing: a burst of withdraws on BTC from
// the hot wallet; once some are answered, btcd is SIGKILLed and started
// again. btcd writes its chain to disk every few minutes, so the kill
// takes the node back to its last flush (a graceful restart just before
// the burst): the burst's blocks, the payments mined and answered in them
// and its pool are gone. payflow sends again what the node forgot
// (btc.Rebroadcast) and replaces what waits too long, so every withdraw is
// answered status=1 exactly once, every recipient is paid exactly its
// amount by exactly one transaction on the best chain, confirmations deep,
// and the hot wallet's UTXO set equals the node and the ledger.
func TestBTCNodeKilledMidBurstLosesNothing(t *testing.T) {
	b := loadBTC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	db := b.st.DB(t)
	hot := btcWallet(t, db, "hot")
	root := repoRoot(t)
	stack := func(cmd string) {
		out, err := exec.Command(filepath.Join(root, "scripts", "stack.sh"), cmd).CombinedOutput()
		require.NoError(t, err, "stack.sh %s:\n%s", cmd, out)
	}
	t.Cleanup(func() { stack("start-btcd") })

	// Enough coins for the burst to run side by side: a deposit of the
	// faucet to the hot wallet, booked silently as a managed wallet's.
	set := btc.NewUTXOs(db, "BTC")
	if coins := spendableCoins(t, ctx, set, hot); coins < 6 {
		before := ledgerBTC(t, db, hot)
		outs := make([]btc.Output, 8)
		for i := range outs {
			outs[i] = btc.Output{Address: hot, Sats: 20_000_000}
		}
		_, err := b.faucet.PayMany(ctx, outs)
		require.NoError(t, err)
		require.True(t, assertEventually(3*time.Minute, func() bool {
			return ledgerBTC(t, db, hot).Sub(before).Equal(decimal.RequireFromString("1.6")) &&
				spendableCoins(t, ctx, set, hot) >= 8
		}), "the faucet's deposit to the hot wallet is booked and its coins spendable")
	}
	b.requireSetEqualsNode(t, ctx, db, hot)
	// btcd flushes its chain as it stops: the kill below goes back here.
	stack("stop-btcd")
	stack("start-btcd")

	resp := b.st.Collect(t, withdrawResp, "queue_id")
	const n = 6
	qids, tos := make([]string, n), make([]string, n)
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			tos[i] = b.externalAddress(t)
			qids[i] = b.publishPayment(t, "withdraw", hot, tos[i], "0.0101")
		}
	}
	answered := func() int {
		k := 0
		for _, q := range qids {
			if q != "" && len(resp.Get(q)) > 0 {
				k++
			}
		}
		return k
	}
	// The first half is answered (mined and confirmed in blocks since the
	// restart); the second half is sent, in the node's pool, when it dies.
	publish(0, n/2)
	require.True(t, assertEventually(4*time.Minute, func() bool { return answered() >= 1 }), "the first withdraws are answered")
	publish(n/2, n)
	sentTx := func(q string) string {
		var txid string
		_ = db.QueryRow("SELECT txid FROM btc_signed WHERE chain='BTC' AND workflow_id=? AND state='sent' ORDER BY attempt DESC LIMIT 1",
			"withdraw-"+q).Scan(&txid)
		return txid
	}
	require.True(t, assertEventually(4*time.Minute, func() bool {
		for _, q := range qids[n/2:] {
			if sentTx(q) == "" {
				return false
			}
		}
		return true
	}), "the second withdraws are sent")
	pid, err := os.ReadFile(filepath.Join(root, ".dev", "pids", "btcd.pid"))
	require.NoError(t, err)
	p, err := strconv.Atoi(strings.TrimSpace(string(pid)))
	require.NoError(t, err)
	heightBefore, _, err := b.client.Head(ctx)
	require.NoError(t, err)
	require.NoError(t, exec.Command("kill", "-9", strconv.Itoa(p)).Run())
	time.Sleep(2 * time.Second)
	stack("start-btcd")
	heightAfter, _, err := b.client.Head(ctx)
	require.NoError(t, err)
	forgot := 0
	for _, q := range qids {
		h, err := chainhash.NewHashFromStr(sentTx(q))
		require.NoError(t, err)
		if _, err := b.client.Tx(ctx, *h); btc.IsNotFound(err) {
			forgot++
		}
	}
	// What the node forgot, as far as the test sees it: payflow may have
	// sent the payments of its emptied pool again already.
	t.Logf("btcd killed at height %d with %d of %d withdraws answered; back at height %d, it knows %d of their %d transactions no more",
		heightBefore, answered(), n, heightAfter, forgot, n)

	for _, q := range qids {
		got := resp.Wait(t, q, 1, 6*time.Minute)[0]
		require.Equal(t, "1", fmt.Sprint(got.Body["status"]), "%s: %v", q, got.Body["error"])
	}
	time.Sleep(quietInterval)
	for _, q := range qids {
		require.Len(t, resp.Get(q), 1, "%s answered once", q)
	}
	for i, to := range tos {
		var last string
		require.True(t, assertEventually(4*time.Minute, func() bool {
			paid, txs, err := b.paidTo(ctx, to)
			last = fmt.Sprintf("%d satoshis in %v (err %v)", paid, txs, err)
			return err == nil && paid == 1_010_000 && len(txs) == 1
		}), "recipient %d is paid exactly once, confirmations deep: %s", i, last)
	}
	b.requireSetEqualsNode(t, ctx, db, hot)
}

// spendableCoins counts address's spendable outputs in the UTXO set.
func spendableCoins(t *testing.T, ctx context.Context, set *btc.UTXOs, address string) int {
	t.Helper()
	coins, err := set.List(ctx, address)
	require.NoError(t, err)
	k := 0
	for _, c := range coins {
		if c.State == btc.UTXOSpendable {
			k++
		}
	}
	return k
}

// paidTo sums what the transactions on the node's best chain, at least the
// chain's confirmations deep, pay address, and lists them.
func (b *btcStack) paidTo(ctx context.Context, address string) (int64, []string, error) {
	a, _, err := btc.ParseAddress(address, b.client.Params())
	if err != nil {
		return 0, nil, err
	}
	txs, err := b.client.AddressTxs(ctx, a, 0, 100, false)
	if err != nil {
		return 0, nil, err
	}
	var sum int64
	var ids []string
	for _, tx := range txs {
		if int(tx.Confirmations) < b.chain.Confirmations {
			continue
		}
		ids = append(ids, tx.Txid)
		for _, o := range tx.Vout {
			if len(o.ScriptPubKey.Address) > 0 && o.ScriptPubKey.Address == address {
				sats, err := btcAmount(o.Value)
				if err != nil {
					return 0, nil, err
				}
				sum += sats
			}
		}
	}
	return sum, ids, nil
}

func btcAmount(v float64) (int64, error) {
	a, err := decimal.NewFromFloat(v).Shift(btc.Decimals).Round(0), error(nil)
	return a.IntPart(), err
}
