package integration

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/shopspring/decimal"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
)

// bookingWait bounds how long a confirmed transfer may take to be booked:
// the listener's next pass, the confirmations, and a shared worker.
const bookingWait = 3 * time.Minute

// firstChain is the stack's first chain (the one stack.json's top level
// describes), where the dev wallets and the faucet live.
func firstChain(t *testing.T, st *stacktest.Stack) *devChain {
	t.Helper()
	for _, c := range devChains(t) {
		if c.ChainID == st.ChainID {
			return c
		}
	}
	t.Fatalf("no chain of stack.json has chain id %d", st.ChainID)
	return nil
}

// ledgerTotal is available + held of owner's symbol on chainName (zero for a
// wallet the ledger has never booked).
func ledgerTotal(t *testing.T, db *sql.DB, chainName, owner, symbol string) decimal.Decimal {
	t.Helper()
	var v decimal.Decimal
	if err := db.QueryRow("SELECT COALESCE(SUM(available+held),0) FROM balances WHERE chain=? AND address=? AND symbol=?",
		chainName, strings.ToLower(owner), symbol).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// requireBookedOnce waits until owner's ledger balance of symbol has risen by
// want from before, then checks that the transfer (txHash, logIndex) was
// credited to owner exactly once, for want, and that nothing was announced
// for owner on the topup answer queue.
func requireBookedOnce(t *testing.T, db *sql.DB, c *devChain, topups *stacktest.Collector, owner, symbol string,
	before, want decimal.Decimal, txHash string, logIndex uint) {
	t.Helper()
	owner = strings.ToLower(owner)
	var got decimal.Decimal
	waitFor(t, bookingWait, fmt.Sprintf("%s %s booked to %s", want, symbol, owner), func() bool {
		got = ledgerTotal(t, db, c.Name, owner, symbol).Sub(before)
		return got.GreaterThanOrEqual(want)
	})
	time.Sleep(quietInterval) // a second credit, or an announcement, would show by now
	if got = ledgerTotal(t, db, c.Name, owner, symbol).Sub(before); !got.Equal(want) {
		t.Errorf("%s's ledger %s rose by %s, want exactly %s", owner, symbol, got, want)
	}
	var n int
	var amount decimal.Decimal
	if err := db.QueryRow("SELECT COUNT(*), COALESCE(SUM(amount),0) FROM journal WHERE op='credit' AND address=? AND idem_key=?",
		owner, ledger.CreditKey(c.Name, txHash, logIndex)).Scan(&n, &amount); err != nil {
		t.Fatal(err)
	}
	if n != 1 || !amount.Equal(want) {
		t.Errorf("%d credits of %s/%d to %s totalling %s, want one of %s under the deposit key", n, txHash, logIndex, owner,
			amount, want)
	}
	if got := topups.Get(owner); len(got) != 0 {
		t.Errorf("%d topup answers for %s, which no topup watches: %v", len(got), owner, got[0].Body)
	}
}

// transferLogIndex is the position, within its transaction's receipt, of the
// Transfer log of r that pays to: the listener's deposit key.
func transferLogIndex(t *testing.T, r *types.Receipt, to string) uint {
	t.Helper()
	for i, lg := range r.Logs {
		if len(lg.Topics) == 3 && lg.Topics[0] == evm.TransferTopic &&
			strings.EqualFold(evm.Lower(common.BytesToAddress(lg.Topics[2].Bytes())), to) {
			return uint(i)
		}
	}
	t.Fatalf("%s has no Transfer log to %s", r.TxHash.Hex(), to)
	return 0
}

// TestWithdrawBetweenManagedWalletsCreditsRecipient: a
// 3.5 USDC withdraw from one managed wallet to another, freshly created and
// watched by no topup, is answered status=1 once; once confirmed the
// recipient's ledger equals its chain balance (3.5, credited once under the
// deposit key) and nothing is announced for it. (Before, the recipient's
// ledger stayed 3.5 below the chain.)
func TestWithdrawBetweenManagedWalletsCreditsRecipient(t *testing.T) {
	st := stacktest.Load(t)
	c := firstChain(t, st)
	eth := c.eth(t)
	db := st.DB(t)
	const symbol = "USDC"
	if _, ok := c.Tokens[symbol]; !ok {
		t.Fatalf("the stack's %s has no %s", c.Name, symbol)
	}
	resp := st.Collect(t, withdrawResp, "queue_id")
	topups := st.Collect(t, topupResp, "address")

	from := walletByLabel(t, db, "user-1")
	to := createWalletOn(t, c.Name, stacktest.RandomID("it-internal-"))
	amount := decimal.RequireFromString("3.5")
	if avail := ledgerTotal(t, db, c.Name, from, symbol); avail.LessThan(amount) {
		t.Fatalf("dev wallet user-1 holds %s %s in the ledger; `make up` funds it", avail, symbol)
	}
	ledgerBefore := ledgerTotal(t, db, c.Name, to, symbol)
	chainBefore := c.balance(t, eth, symbol, to)

	queueID := stacktest.RandomID("it-internal-")
	body, err := protocol.SignBody(st.SignKey, chainWithdrawBody(queueID, from, to, amount.String(), c.Name, symbol))
	if err != nil {
		t.Fatal(err)
	}
	st.Publish(t, withdrawKey, body, false)
	got := resp.Wait(t, queueID, 1, responseWait)[0]
	if s := fmt.Sprint(got.Body["status"]); s != "1" {
		t.Fatalf("withdraw answered status=%s (%v), want 1", s, got.Body["error"])
	}
	txHash, _ := got.Body["tx_hash"].(string)
	r, err := eth.TransactionReceipt(t.Context(), common.HexToHash(txHash))
	if err != nil {
		t.Fatalf("receipt of %s: %v", txHash, err)
	}
	if d := c.balance(t, eth, symbol, to).Sub(chainBefore); !d.Equal(amount) {
		t.Fatalf("the recipient received %s %s on chain, want %s", d, symbol, amount)
	}

	requireBookedOnce(t, db, c, topups, to, symbol, ledgerBefore, amount, txHash, transferLogIndex(t, r, to))
	if l, ch := ledgerTotal(t, db, c.Name, to, symbol), c.balance(t, eth, symbol, to); !l.Equal(ch) {
		t.Errorf("recipient %s: ledger %s %s, chain %s", to, l, symbol, ch)
	}
	if n := len(resp.Get(queueID)); n != 1 {
		t.Errorf("%d withdraw answers for %s, want 1", n, queueID)
	}
}

// TestRefillOfGasWalletIsBooked: 0.5 of the native
// coin sent from outside to the gas wallet (an operator's refill) raises its
// ledger by exactly 0.5 once confirmed, and so does an asset no topup watches
// (2 USDT, a token the gas wallet never holds otherwise); nothing is
// announced. (Before, the ledger stayed where it was while the chain rose.)
func TestRefillOfGasWalletIsBooked(t *testing.T) {
	st := stacktest.Load(t)
	c := firstChain(t, st)
	eth := c.eth(t)
	db := st.DB(t)
	topups := st.Collect(t, topupResp, "address")
	var gas string
	if err := db.QueryRow("SELECT address FROM wallets WHERE chain=? AND kind='gas' ORDER BY id LIMIT 1", c.Name).
		Scan(&gas); err != nil {
		t.Fatalf("the gas wallet of %s: %v", c.Name, err)
	}

	for _, tc := range []struct {
		symbol string
		amount decimal.Decimal
	}{
		{c.Native.Symbol, decimal.RequireFromString("0.5")},
		{"USDT", decimal.RequireFromString("2")},
	} {
		t.Run(tc.symbol, func(t *testing.T) {
			before := ledgerTotal(t, db, c.Name, gas, tc.symbol)
			chainBefore := c.balance(t, eth, tc.symbol, gas)
			r := c.faucetSend(t, eth, tc.symbol, gas, tc.amount)
			if d := c.balance(t, eth, tc.symbol, gas).Sub(chainBefore); !d.Equal(tc.amount) {
				t.Fatalf("the gas wallet received %s %s on chain, want %s", d, tc.symbol, tc.amount)
			}
			idx := chain.NativeLogIndex
			if tc.symbol != c.Native.Symbol {
				idx = transferLogIndex(t, r, gas)
			}
			requireBookedOnce(t, db, c, topups, gas, tc.symbol, before, tc.amount, r.TxHash.Hex(), idx)
		})
	}
}
