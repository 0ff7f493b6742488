package integration

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/rpcclient"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"payflow/chain"
	"payflow/chain/btc"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/workflows"
)

// btcStack is the dev stack's Bitcoin chain, for a test: its description,
// a client of its node and the faucet.
type btcStack struct {
	st     *stacktest.Stack
	chain  stackfileBTC
	client *btc.Client
	faucet *btc.Faucet
}

// stackfileBTC is what the tests read of stack.json's chains.BTC.
type stackfileBTC struct {
	Network       string
	Confirmations int
}

// loadBTC reads the dev Bitcoin chain from stack.json and dials its node.
func loadBTC(t *testing.T) *btcStack {
	t.Helper()
	st := stacktest.Load(t)
	c, ok := st.Chains["BTC"]
	if !ok || !c.IsBTC() {
		t.Fatal("stack.json has no chains.BTC: the dev stack runs btcd (`make up` writes it)")
	}
	client, err := btc.Dial(btc.ClientConfig{URL: c.BTCRPCURL, User: c.RPCUser, Password: c.RPCPassword, Network: c.Network})
	require.NoError(t, err)
	t.Cleanup(client.Close)
	faucet, err := btc.NewFaucet(client, c.FaucetPrivateKey)
	require.NoError(t, err)
	return &btcStack{st: st, chain: stackfileBTC{Network: c.Network, Confirmations: c.Confirmations},
		client: client, faucet: faucet}
}

// derivedAddresses derives n fresh receive addresses of payflow-signer's
// BIP84 account (from its xpub alone, as the worker does), at random
// indexes far above the ones the dev stack registers: a new run watches
// addresses no earlier run watched.
func (b *btcStack) derivedAddresses(t *testing.T, ctx context.Context, n int) []string {
	t.Helper()
	acct, err := signerapi.NewClient(b.st.SignerSocket).BTCAccount(ctx, b.chain.Network)
	require.NoError(t, err)
	account, err := btc.NewAccount(acct.XPub, b.client.Params())
	require.NoError(t, err)
	var r [4]byte
	_, _ = rand.Read(r[:])
	first := 1<<24 + binary.BigEndian.Uint32(r[:])%(1<<30)
	out := make([]string, n)
	for i := range out {
		out[i], err = account.Address(first + uint32(i))
		require.NoError(t, err)
	}
	return out
}

// topup asks payflow to watch address on BTC and waits until the watch is
// recorded.
func (b *btcStack) topup(t *testing.T, ctx context.Context, address string) {
	t.Helper()
	body := fmt.Sprintf(`{"chain":"BTC","symbol":"BTC","address":%q,"timestamp":%d}`, address, time.Now().Unix())
	b.st.Publish(t, topupKey, []byte(body), true)
	watched := btc.NewWatched(b.st.DB(t), "BTC")
	require.Eventually(t, func() bool {
		ok, err := watched.IsWatched(ctx, address)
		return err == nil && ok
	}, time.Minute, 100*time.Millisecond, "the topup of %s is watched", address)
}

// btcDeposit is one output expected to be announced and credited.
type btcDeposit struct {
	txid    string
	vout    int
	address string
	sats    int64
}

// TestBTCTopupDepositsPerOutput: topups of two addresses derived from
// payflow-signer's Bitcoin account; the faucet pays each in a transaction
// of its own, then both in one transaction. Each output is one deposit,
// announced status=2 then status=1 exactly once with log_index its output
// index and its exact amount, and credited once; at the end the ledger's
// BTC balance of each address equals what the node's address index shows
// unspent for it.
func TestBTCTopupDepositsPerOutput(t *testing.T) {
	b := loadBTC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db := b.st.DB(t)
	resp := b.st.Collect(t, topupResp, "address")
	addrs := b.derivedAddresses(t, ctx, 2)
	for _, a := range addrs {
		b.topup(t, ctx, a)
	}

	one, err := b.faucet.Pay(ctx, addrs[0], 12_500_000)
	require.NoError(t, err)
	two, err := b.faucet.Pay(ctx, addrs[1], 7_000_000)
	require.NoError(t, err)
	both, err := b.faucet.PayMany(ctx, []btc.Output{{Address: addrs[0], Sats: 3_000_000}, {Address: addrs[1], Sats: 1_234_567}})
	require.NoError(t, err)
	want := []btcDeposit{
		{one.TxHash().String(), 0, addrs[0], 12_500_000},
		{two.TxHash().String(), 0, addrs[1], 7_000_000},
		{both.TxHash().String(), 0, addrs[0], 3_000_000},
		{both.TxHash().String(), 1, addrs[1], 1_234_567},
	}

	for _, a := range addrs {
		resp.Wait(t, a, 4, 3*time.Minute)
	}
	time.Sleep(quietInterval) // a duplicate would arrive meanwhile
	for _, a := range addrs {
		got := resp.Get(a)
		require.Len(t, got, 4, "%s: two notices per deposit: %v", a, got)
		type key struct {
			tx, idx, status string
		}
		seen := map[key]int{}
		for i, d := range got {
			require.Equal(t, "BTC", d.Body["chain"])
			require.Equal(t, "BTC", d.Body["symbol"])
			require.Empty(t, d.Body["error"])
			k := key{fmt.Sprint(d.Body["tx_hash"]), fmt.Sprint(d.Body["log_index"]), fmt.Sprint(d.Body["status"])}
			seen[k]++
			if k.status == "1" {
				for _, e := range got[i:] {
					require.False(t, fmt.Sprint(e.Body["tx_hash"]) == k.tx && fmt.Sprint(e.Body["log_index"]) == k.idx &&
						fmt.Sprint(e.Body["status"]) == "2", "status 2 of %s:%s after its status 1", k.tx, k.idx)
				}
			}
			for _, w := range want {
				if w.txid == k.tx && fmt.Sprint(w.vout) == k.idx {
					require.Equal(t, w.address, a)
					require.Equal(t, decimal.New(w.sats, -btc.Decimals).String(), fmt.Sprint(d.Body["amount"]), "%s:%d", w.txid, w.vout)
				}
			}
		}
		for _, w := range want {
			if w.address != a {
				continue
			}
			for _, status := range []string{"2", "1"} {
				require.Equal(t, 1, seen[key{w.txid, fmt.Sprint(w.vout), status}], "%s:%d announced status %s once", w.txid, w.vout, status)
			}
		}
	}

	// The ledger: one credit per output, of its amount, and each address's
	// balance the node's unspent outputs paying it.
	for _, w := range want {
		var n int
		var amount decimal.Decimal
		require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM journal
			WHERE op='credit' AND chain='BTC' AND tx_hash=? AND log_index=? AND address=?`, w.txid, w.vout, w.address).Scan(&n, &amount))
		require.Equal(t, 1, n, "%s:%d credited once", w.txid, w.vout)
		require.Equal(t, decimal.New(w.sats, -btc.Decimals).String(), amount.String())
	}
	set := btc.NewUTXOs(db, "BTC") // topup addresses are not in it: every output the node shows is "unknown" to it
	for _, a := range addrs {
		var available, held decimal.Decimal
		require.NoError(t, db.QueryRowContext(ctx, "SELECT available, held FROM balances WHERE chain='BTC' AND address=? AND symbol='BTC'",
			a).Scan(&available, &held))
		r, err := set.Reconcile(ctx, b.client, a, int64(b.chain.Confirmations))
		require.NoError(t, err)
		var onNode int64
		for _, c := range r.Unknown {
			onNode += c.Value
		}
		var sum int64
		for _, w := range want {
			if w.address == a {
				sum += w.sats
			}
		}
		require.Len(t, r.Unknown, 2, "%s: two unspent outputs on the node", a)
		require.Equal(t, sum, onNode, "%s: the node holds what was paid", a)
		require.Equal(t, decimal.New(onNode, -btc.Decimals).String(), available.Add(held).String(),
			"%s: the ledger's balance equals the node's", a)
	}
}

// TestBTCTopupAddressOfAnotherFamilyRefused: a topup naming an EVM address
// on BTC, or a BTC address on ETH, is answered status=0 saying what an
// address of that chain is; a well-formed one starts its watch.
func TestBTCTopupAddressOfAnotherFamilyRefused(t *testing.T) {
	b := loadBTC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp := b.st.Collect(t, topupResp, "address")
	btcAddr := b.derivedAddresses(t, ctx, 1)[0]
	evmAddr := stacktest.RandomAddress()
	for _, c := range []struct{ chain, address, want string }{
		{"BTC", evmAddr, "is not a native segwit (bech32, P2WPKH) address of BTC's network " + b.chain.Network},
		{"ETH", btcAddr, "is not a 0x-prefixed 20-byte hex address"},
	} {
		body := fmt.Sprintf(`{"chain":%q,"symbol":%q,"address":%q,"timestamp":%d}`, c.chain, c.chain, c.address, time.Now().Unix())
		b.st.Publish(t, topupKey, []byte(body), true)
		got := resp.Wait(t, c.address, 1, time.Minute)[0]
		require.Equal(t, "0", fmt.Sprint(got.Body["status"]), "%s on %s", c.address, c.chain)
		require.Contains(t, fmt.Sprint(got.Body["error"]), c.want)
	}
	watched := btc.NewWatched(b.st.DB(t), "BTC")
	ok, err := watched.IsWatched(ctx, strings.ToLower(evmAddr))
	require.NoError(t, err)
	require.False(t, ok)
}

// TestBTCPaymentWithTooManyDecimalsRefused: a withdraw of 9 decimals on
// BTC is answered status=0 at once, saying so.
func TestBTCPaymentWithTooManyDecimalsRefused(t *testing.T) {
	b := loadBTC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addrs := b.derivedAddresses(t, ctx, 2)
	resp := b.st.Collect(t, withdrawResp, "queue_id")
	qid := b.publishPayment(t, "withdraw", addrs[0], addrs[1], "0.123456789")
	got := resp.Wait(t, qid, 1, time.Minute)[0]
	require.Equal(t, "0", fmt.Sprint(got.Body["status"]))
	require.Contains(t, fmt.Sprint(got.Body["error"]), "has more than 8 decimals")
}

// TestBTCTopupDepositReorganisedBackToWaiting: a deposit told seen (one
// confirmation or two, short of the chain's confirmations) whose block
// btcd's invalidateblock takes off the best chain is told reorged: the
// Deposit waits again, uncredited. btcd puts the transaction back in its
// pool and the miner mines it into another block: the Deposit is told seen
// there, then confirmed, and is credited once, announced status=2 then
// status=1 once, with the new block; the ledger equals the node.
func TestBTCTopupDepositReorganisedBackToWaiting(t *testing.T) {
	b := loadBTC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db := b.st.DB(t)
	tc := b.st.Temporal(t)
	resp := b.st.Collect(t, topupResp, "address")
	addr := b.derivedAddresses(t, ctx, 1)[0]
	b.topup(t, ctx, addr)

	tx, err := b.faucet.Pay(ctx, addr, 4_321_000)
	require.NoError(t, err)
	txid := tx.TxHash()
	wfID := workflows.DepositWorkflowID("BTC", txid.String(), 0)
	// Seen: the tracker told the Deposit its block ("confirming").
	require.Eventually(t, func() bool {
		v, err := tc.QueryWorkflow(ctx, wfID, "", workflows.QueryStatus)
		var step string
		return err == nil && v.Get(&step) == nil && step == "confirming"
	}, time.Minute, 100*time.Millisecond, "the deposit is told seen")
	r, err := b.client.Tx(ctx, txid)
	require.NoError(t, err)
	require.Less(t, int(r.Confirmations), b.chain.Confirmations, "seen, not yet confirmed")
	first, err := chainhash.NewHashFromStr(r.BlockHash)
	require.NoError(t, err)
	require.NoError(t, b.rpc(t).InvalidateBlock(first), "btcd serves invalidateblock")
	t.Cleanup(func() { _ = b.rpc(t).ReconsiderBlock(first) }) // a longer branch has grown above its parent: nothing changes

	got := resp.Wait(t, addr, 2, 3*time.Minute)
	time.Sleep(quietInterval)
	got = resp.Get(addr)
	require.Len(t, got, 2, "status 2 then status 1, once each: %v", got)
	require.Equal(t, "2", fmt.Sprint(got[0].Body["status"]))
	require.Equal(t, "1", fmt.Sprint(got[1].Body["status"]))
	r, err = b.client.Tx(ctx, txid)
	require.NoError(t, err)
	require.NotEqual(t, first.String(), r.BlockHash, "mined again in another block")
	again, err := b.client.BlockHash(ctx, int64(json2uint(t, got[1].Body["block_number"])))
	require.NoError(t, err)
	require.Equal(t, r.BlockHash, again.String(), "status=1 names the block it is confirmed in")
	for _, d := range got {
		require.Equal(t, txid.String(), d.Body["tx_hash"])
		require.Equal(t, "0", fmt.Sprint(d.Body["log_index"]))
		require.Equal(t, "0.04321", fmt.Sprint(d.Body["amount"]))
	}

	// What the Deposit was told: seen in the first block, reorged, seen in
	// the second, confirmed there.
	var told []string
	it := tc.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		s := ev.GetWorkflowExecutionSignaledEventAttributes()
		if s == nil || s.GetSignalName() != workflows.SignalTxEvent {
			continue
		}
		var e chain.TxEvent
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(s.GetInput(), &e))
		told = append(told, string(e.Milestone)+"@"+e.BlockHash)
	}
	require.Equal(t, []string{"seen@" + first.String(), "reorged@" + first.String(), "seen@" + r.BlockHash,
		"confirmed@" + r.BlockHash}, dedupe(told), "the Deposit's milestones")

	var n int
	var amount decimal.Decimal
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM journal
		WHERE op='credit' AND chain='BTC' AND tx_hash=? AND log_index=0`, txid.String()).Scan(&n, &amount))
	require.Equal(t, 1, n, "credited once")
	require.Equal(t, "0.04321", amount.String())
	rec, err := btc.NewUTXOs(db, "BTC").Reconcile(ctx, b.client, addr, int64(b.chain.Confirmations))
	require.NoError(t, err)
	require.Len(t, rec.Unknown, 1)
	require.EqualValues(t, 4_321_000, rec.Unknown[0].Value, "the node holds the deposit once")
}

// rpc is a raw client of the dev node, for what payflow never asks of it
// (invalidateblock).
func (b *btcStack) rpc(t *testing.T) *rpcclient.Client {
	t.Helper()
	c := b.st.Chains["BTC"]
	u, err := url.Parse(c.BTCRPCURL)
	require.NoError(t, err)
	rc, err := rpcclient.New(&rpcclient.ConnConfig{Host: u.Host, User: c.RPCUser, Pass: c.RPCPassword, HTTPPostMode: true,
		DisableTLS: true}, nil)
	require.NoError(t, err)
	t.Cleanup(rc.Shutdown)
	return rc
}

// dedupe drops consecutive repeats (a milestone told twice: delivery is at
// least once).
func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}

func json2uint(t *testing.T, v any) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(fmt.Sprint(v), 10, 64)
	require.NoError(t, err)
	return n
}

// TestBTCNodeDownDelaysOnlyBTC: with btcd stopped, a withdraw on ETH is
// paid and answered, while a pay on BTC from the hot wallet waits
// unanswered and a topup on BTC waits too; once btcd is back the pay is
// paid (status=1, once), the topup's watch begins and a deposit to it is
// announced 2 then 1 and credited.
func TestBTCNodeDownDelaysOnlyBTC(t *testing.T) {
	b := loadBTC(t)
	st := b.st
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := repoRoot(t)
	stack := func(cmd string) {
		out, err := exec.Command(filepath.Join(root, "scripts", "stack.sh"), cmd).CombinedOutput()
		require.NoError(t, err, "stack.sh %s:\n%s", cmd, out)
	}
	var once sync.Once
	restart := func() { once.Do(func() { stack("start-btcd") }) }
	t.Cleanup(restart)
	addr := b.derivedAddresses(t, ctx, 2)
	wresp := st.Collect(t, withdrawResp, "queue_id")
	presp := st.Collect(t, "pay.auto.return.queue", "queue_id")
	tresp := st.Collect(t, topupResp, "address")
	stack("stop-btcd")

	paid, delayed := stacktest.RandomID("it-btc-down-eth-"), stacktest.RandomID("it-btc-down-pay-")
	st.Publish(t, withdrawKey, chainWithdrawBody(paid, hotWallet(t, st), stacktest.RandomAddress(), "0.5", "ETH", "USDT"), true)
	st.Publish(t, "pay.auto.routing.key", []byte(fmt.Sprintf(
		`{"queue_id":%q,"from_address":%q,"to_address":%q,"amount":0.1,"chain":"BTC","symbol":"BTC","order_id":"o-1","timestamp":%d}`,
		delayed, btcWallet(t, st.DB(t), "hot"), b.externalAddress(t), time.Now().Unix())), true)
	st.Publish(t, topupKey, []byte(fmt.Sprintf(`{"chain":"BTC","symbol":"BTC","address":%q,"timestamp":%d}`, addr[0],
		time.Now().Unix())), true)
	require.Equal(t, "1", status(wresp.Wait(t, paid, 1, responseWait)[0]), "ETH is paid while btcd is down")
	require.Empty(t, presp.Get(delayed), "the BTC pay waits for its node")
	watched := btc.NewWatched(st.DB(t), "BTC")
	ok, err := watched.IsWatched(ctx, addr[0])
	require.NoError(t, err)
	require.False(t, ok, "the watch begins at the node's head: it waits for btcd")

	restart()
	require.Eventually(t, func() bool {
		ok, err := watched.IsWatched(ctx, addr[0])
		return err == nil && ok
	}, 2*time.Minute, 200*time.Millisecond, "the topup is watched once btcd is back")
	tx, err := b.faucet.Pay(ctx, addr[0], 2_500_000)
	require.NoError(t, err)
	got := presp.Wait(t, delayed, 1, 4*time.Minute)[0]
	require.Equal(t, "1", status(got), "the BTC pay is paid once its node is back: %v", got.Body["error"])
	deps := tresp.Wait(t, addr[0], 2, 3*time.Minute)
	require.Equal(t, []string{"2", "1"}, []string{status(deps[0]), status(deps[1])})
	for _, d := range deps {
		require.Equal(t, tx.TxHash().String(), d.Body["tx_hash"])
		require.Equal(t, "0.025", fmt.Sprint(d.Body["amount"]))
	}
}
