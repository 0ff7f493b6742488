package integration

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/btcsuite/btcd/wire"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"payflow/chain/btc"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/workflows"
)

// newBTCDepositWallet registers a deposit wallet of BTC at a fresh index of
// payflow-signer's Bitcoin account (far above the dev stack's), as the
// address allocator does, and has payflow watch it for topups, as a user's
// deposit address is.
func (b *btcStack) newDepositWallet(t *testing.T, ctx context.Context) string {
	t.Helper()
	acct, err := signerapi.NewClient(b.st.SignerSocket).BTCAccount(ctx, b.chain.Network)
	require.NoError(t, err)
	account, err := btc.NewAccount(acct.XPub, b.client.Params())
	require.NoError(t, err)
	var r [4]byte
	_, _ = rand.Read(r[:])
	index := 1<<24 + binary.BigEndian.Uint32(r[:])%(1<<30)
	addr, err := account.Address(index)
	require.NoError(t, err)
	_, err = ledger.NewWallets(b.st.DB(t), nil).RegisterHD(ctx, "BTC", ledger.KindDeposit, fmt.Sprintf("it-sweep-%d", index), addr, index)
	require.NoError(t, err)
	b.topup(t, ctx, addr)
	return addr
}

// runBTCSweep runs the Sweep workflow on BTC for address alone, as its
// schedule does every hour, and returns what it started.
func runBTCSweep(t *testing.T, ctx context.Context, tc client.Client, address string) workflows.SweepResult {
	t.Helper()
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: stacktest.RandomID("it-btc-sweep-run-"),
		TaskQueue: "payflow.BTC"}, workflows.Sweep, workflows.SweepInput{Symbols: []string{"BTC"}, Addresses: []string{address},
		ConfirmTimeout: 3 * time.Minute})
	require.NoError(t, err)
	var res workflows.SweepResult
	require.NoError(t, run.Get(ctx, &res), "Sweep")
	return res
}

// TestBTCDepositWalletSweptInOneTransaction: a fresh deposit wallet on BTC
// is paid four outputs in two transactions, 3.5 BTC in all, above the 3 BTC
// sweep_threshold, and credited. A Sweep run sweeps it in one transaction
// whose inputs are exactly those four coins and whose one output pays the
// collection wallet, the fee taken from the coins, signed by
// payflow-signer. The deposit wallet's ledger ends at 0, the collection's
// is credited what reached it (once, though the scanner books that output
// as a deposit too), and each wallet's UTXO set equals the node and the
// ledger. A second Sweep run, and a reset of the wallet sweep, sign
// nothing new.
func TestBTCDepositWalletSweptInOneTransaction(t *testing.T) {
	b := loadBTC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	db := b.st.DB(t)
	tc := b.st.Temporal(t)
	collection := btcWallet(t, db, "collection")
	dep := b.newDepositWallet(t, ctx)

	many, err := b.faucet.PayMany(ctx, []btc.Output{{Address: dep, Sats: 120_000_000}, {Address: dep, Sats: 90_000_000},
		{Address: dep, Sats: 80_000_000}})
	require.NoError(t, err)
	one, err := b.faucet.Pay(ctx, dep, 60_000_000)
	require.NoError(t, err)
	coins := []wire.OutPoint{{Hash: many.TxHash(), Index: 0}, {Hash: many.TxHash(), Index: 1}, {Hash: many.TxHash(), Index: 2},
		{Hash: one.TxHash(), Index: 0}}
	total := decimal.New(350_000_000, -btc.Decimals)

	// Booked first: each output credited by its Deposit workflow, and in
	// the wallet's UTXO set.
	var last decimal.Decimal
	require.True(t, assertEventually(4*time.Minute, func() bool {
		last = ledgerBTC(t, db, dep)
		return last.Equal(total)
	}), "the deposits to %s are credited: ledger %s, want %s", dep, last, total)
	b.requireSetEqualsNode(t, ctx, db, dep)
	b.requireSetEqualsNode(t, ctx, db, collection)
	collBefore := ledgerBTC(t, db, collection)

	res := runBTCSweep(t, ctx, tc, dep)
	require.Equal(t, 1, res.StartedCount, "one wallet sweep: %+v", res)
	require.Equal(t, collection, res.Collection)
	wfID := res.Started[0].WorkflowID
	var swept workflows.WalletSweepResult
	require.NoError(t, tc.GetWorkflow(ctx, wfID, "").Get(ctx, &swept), "WalletSweep %s", wfID)
	require.Len(t, swept.Swept, 1, "%+v", swept)
	s := swept.Swept[0]
	require.Equal(t, "BTC", s.Symbol)

	tx, _ := b.minedTx(t, ctx, s.TxHash)
	var spent []wire.OutPoint
	for _, in := range tx.TxIn {
		spent = append(spent, in.PreviousOutPoint)
	}
	byOutpoint := func(a, b wire.OutPoint) int {
		if c := slices.Compare(a.Hash[:], b.Hash[:]); c != 0 {
			return c
		}
		return int(a.Index) - int(b.Index)
	}
	slices.SortFunc(spent, byOutpoint)
	slices.SortFunc(coins, byOutpoint)
	require.Equal(t, coins, spent, "one transaction spends every coin of the wallet")
	require.Len(t, tx.TxOut, 1, "one output, no change")
	received := b.outputsTo(t, tx, collection)
	require.Equal(t, tx.TxOut[0].Value, received, "the one output pays the collection wallet")
	fee := total.Sub(decimal.New(received, -btc.Decimals))
	require.True(t, fee.IsPositive(), "the fee %s comes from the coins", fee)
	require.Equal(t, decimal.New(received, -btc.Decimals).String(), s.Amount.String())
	require.Equal(t, fee.String(), s.Fee)

	var signed int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM signer_btc_steps WHERE workflow_id=? AND txid=?",
		wfID, s.TxHash).Scan(&signed))
	require.Equal(t, 1, signed, "payflow-signer signed the mined transaction")

	// The ledger ends equal to the chain for both wallets.
	require.True(t, ledgerBTC(t, db, dep).IsZero(), "the deposit wallet: %s", ledgerBTC(t, db, dep))
	require.Equal(t, collBefore.Add(decimal.New(received, -btc.Decimals)).String(), ledgerBTC(t, db, collection).String(),
		"the collection is credited what reached it")
	b.requireSetEqualsNode(t, ctx, db, dep)
	b.requireSetEqualsNode(t, ctx, db, collection)
	var credits int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM journal WHERE op='credit' AND chain='BTC' AND tx_hash=?
		AND address=?`, s.TxHash, collection).Scan(&credits))
	require.Equal(t, 1, credits, "the sweep's output is credited once, though the scanner booked it as a deposit too")

	// Nothing new is signed: not by another run, nor by a reset of this one.
	steps := func() int {
		var n int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM signer_btc_steps WHERE from_address=?", dep).Scan(&n))
		return n
	}
	before := steps()
	again := runBTCSweep(t, ctx, tc, dep)
	require.Zero(t, again.StartedCount, "a wallet holding nothing is not swept again: %+v", again)
	resetWorkflow(t, b.st, tc, wfID, "FirstWorkflowTask", false)
	var reset workflows.WalletSweepResult
	require.NoError(t, tc.GetWorkflow(ctx, wfID, "").Get(ctx, &reset), "the reset run of %s", wfID)
	require.Empty(t, reset.Swept, "the reset run finds its reservation settled and sweeps nothing")
	require.Equal(t, before, steps(), "nothing new signed")
	require.True(t, ledgerBTC(t, db, dep).IsZero())
	require.Equal(t, collBefore.Add(decimal.New(received, -btc.Decimals)).String(), ledgerBTC(t, db, collection).String())
}
