package activities_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"payflow/activities"
	"payflow/chain/evm"
	"payflow/chain/evm/send"
	"payflow/chain/token"
	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
)

const (
	deployerKeyHex = "6f18fa8eb4ce0e480fded9ea37e346c9b1aac2c94b2d1824e68c0762b562937e"
	simChainID     = 1337
)

var (
	walletW = common.HexToAddress("0x00000000000000000000000000000000000a11e1") // the mismatched one
	walletV = common.HexToAddress("0x00000000000000000000000000000000000a11e2") // credited exactly
	// ghostTx is credited in the ledger and exists nowhere on chain.
	ghostTx = "0x9999999999999999999999999999999999999999999999999999999999999999"
)

// reconFixture is a simulated chain with TestUSDT, a fresh ledger database
// and the activities over both.
type reconFixture struct {
	t     *testing.T
	ctx   context.Context
	sim   *simulated.Backend
	usdt  *token.TestUSDT
	auth  *bind.TransactOpts
	led   *ledger.Ledger
	acts  *activities.Activities
	env   *testsuite.TestActivityEnvironment
	token common.Address
}

func newReconFixture(t *testing.T) *reconFixture {
	t.Helper()
	key, err := crypto.HexToECDSA(deployerKeyHex)
	require.NoError(t, err)
	deployer := crypto.PubkeyToAddress(key.PublicKey)
	f := &reconFixture{t: t, ctx: context.Background()}
	f.sim = simulated.NewBackend(types.GenesisAlloc{deployer: {Balance: new(big.Int).Exp(big.NewInt(10), big.NewInt(21), nil)}})
	t.Cleanup(func() { f.sim.Close() })
	f.auth, err = bind.NewKeyedTransactorWithChainID(key, big.NewInt(simChainID))
	require.NoError(t, err)
	var tx *types.Transaction
	f.token, tx, f.usdt, err = token.DeployTestUSDT(f.auth, f.sim.Client())
	require.NoError(t, err)
	f.mine(tx)
	tx, err = f.usdt.Mint(f.auth, deployer, big.NewInt(1_000_000_000_000))
	require.NoError(t, err)
	f.mine(tx)

	db := stacktest.TestDB(t, "activities")
	require.NoError(t, ledger.Migrate(f.ctx, db))
	f.led = ledger.New(db)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: "ETH", ChainID: big.NewInt(simChainID),
		MaxFeeWei: big.NewInt(100_000_000_000)}, db, f.sim.Client(), nil, log)
	require.NoError(t, err)
	f.acts = &activities.Activities{Chain: "ETH", Assets: config.ChainConfig{Tokens: map[string]config.Token{"USDT": {Address: evm.Lower(f.token), Decimals: 6}}},
		DB: db, Ledger: f.led, Wallets: ledger.NewWallets(db, nil)}
	useFamily(t, f.acts, db, f.sim.Client(), bc)
	var s testsuite.WorkflowTestSuite
	f.env = s.NewTestActivityEnvironment()
	f.env.RegisterActivity(f.acts)
	return f
}

func (f *reconFixture) mine(tx *types.Transaction) *types.Receipt {
	f.t.Helper()
	f.sim.Commit()
	r, err := f.sim.Client().TransactionReceipt(f.ctx, tx.Hash())
	require.NoError(f.t, err)
	require.Equal(f.t, types.ReceiptStatusSuccessful, r.Status)
	return r
}

func (f *reconFixture) send(to common.Address, units int64) *types.Receipt {
	f.t.Helper()
	tx, err := f.usdt.Transfer(f.auth, to, big.NewInt(units))
	require.NoError(f.t, err)
	return f.mine(tx)
}

func (f *reconFixture) credit(addr common.Address, amount, txHash string, logIndex uint) {
	f.t.Helper()
	_, err := f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: evm.Lower(addr), Symbol: "USDT",
		Amount: decimal.RequireFromString(amount), TxHash: txHash, LogIndex: logIndex, Reference: "test"})
	require.NoError(f.t, err)
}

func (f *reconFixture) pin() activities.PinnedBlock {
	f.t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.PinBlock, activities.PinInput{Confirmations: 0})
	require.NoError(f.t, err)
	var pin activities.PinnedBlock
	require.NoError(f.t, v.Get(&pin))
	return pin
}

func (f *reconFixture) reconcile(runID string, pin activities.PinnedBlock) (activities.ReconBatchResult, error) {
	f.t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.ReconcileWallets, activities.ReconBatchInput{RunID: runID, Block: pin,
		Addresses: []string{evm.Lower(walletW), evm.Lower(walletV)}, Symbols: []string{"USDT"}})
	if err != nil {
		return activities.ReconBatchResult{}, err
	}
	var res activities.ReconBatchResult
	require.NoError(f.t, v.Get(&res))
	return res, nil
}

func (f *reconFixture) recorded(runID string, addr common.Address) ledger.Reconciliation {
	f.t.Helper()
	page, err := f.led.Reconciliations(f.ctx, ledger.ReconQuery{Chain: "ETH", Address: evm.Lower(addr)})
	require.NoError(f.t, err)
	for _, r := range page.Reconciliations {
		if r.RunID == runID {
			return r
		}
	}
	f.t.Fatalf("no reconciliation of %s in %s", evm.Lower(addr), runID)
	return ledger.Reconciliation{}
}

// TestReconcileWalletsExplainsDifference: W's ledger and chain differ by
// a transfer the ledger never booked (chain_only), the unbooked second log
// of a transaction whose first log was booked (chain_only, the missing
// part), and a credit of a transaction that is not on chain (ledger_only);
// V, booked exactly, matches. A repeat under the same run id after the
// ledger moved keeps and reports the first record.
func TestReconcileWalletsExplainsDifference(t *testing.T) {
	f := newReconFixture(t)
	booked := f.send(walletW, 10_000_000)
	f.credit(walletW, "10", booked.TxHash.Hex(), 0)
	unbooked := f.send(walletW, 4_000_000)
	batch, err := f.usdt.BatchTransfer(f.auth, []common.Address{walletW, walletW}, []*big.Int{big.NewInt(1_000_000), big.NewInt(3_000_000)})
	require.NoError(t, err)
	partial := f.mine(batch)
	f.credit(walletW, "1", partial.TxHash.Hex(), 0)
	f.credit(walletW, "2", ghostTx, 0)
	forV := f.send(walletV, 7_250_000)
	f.credit(walletV, "7.25", forV.TxHash.Hex(), 0)
	f.sim.Commit()
	pin := f.pin()

	res, err := f.reconcile("run-1", pin)
	require.NoError(t, err)
	require.Equal(t, 2, res.Checked)
	require.Len(t, res.Mismatches, 1)
	m := res.Mismatches[0]
	require.Equal(t, evm.Lower(walletW), m.Address)
	require.True(t, m.LedgerTotal.Equal(decimal.RequireFromString("13")), "ledger %s", m.LedgerTotal.String())
	require.True(t, m.ChainBalance.Equal(decimal.RequireFromString("18")), "chain %s", m.ChainBalance.String())
	require.True(t, m.Difference.Equal(decimal.RequireFromString("5")), "difference %s", m.Difference.String())
	require.Equal(t, 3, m.Unmatched)

	w := f.recorded("run-1", walletW)
	require.Equal(t, ledger.ReconMismatch, w.Status)
	require.Equal(t, pin.Number, w.BlockNumber)
	require.Equal(t, strings.ToLower(pin.Hash), w.BlockHash)
	type um struct {
		side, tx string
		logIndex uint
		amount   string
	}
	var got []um
	for _, u := range w.Unmatched {
		got = append(got, um{u.Side, u.TxHash, u.LogIndex, u.Amount.String()})
	}
	sort.Slice(got, func(i, j int) bool { return got[i].tx < got[j].tx })
	want := []um{
		{ledger.SideChainOnly, strings.ToLower(unbooked.TxHash.Hex()), 0, "4"},
		{ledger.SideChainOnly, strings.ToLower(partial.TxHash.Hex()), 0, "3"},
		{ledger.SideLedgerOnly, ghostTx, 0, "2"},
	}
	sort.Slice(want, func(i, j int) bool { return want[i].tx < want[j].tx })
	require.Equal(t, want, got)

	v := f.recorded("run-1", walletV)
	require.Equal(t, ledger.ReconMatched, v.Status)
	require.True(t, v.Difference.IsZero())
	require.Empty(t, v.Unmatched)

	// The ledger catches up, then the same batch of the same run repeats (a
	// retry): the first record stands and is what is reported.
	f.credit(walletW, "4", unbooked.TxHash.Hex(), 0)
	again, err := f.reconcile("run-1", pin)
	require.NoError(t, err)
	require.Len(t, again.Mismatches, 1)
	require.True(t, again.Mismatches[0].Difference.Equal(decimal.RequireFromString("5")))
	// A new run sees the smaller difference.
	next, err := f.reconcile("run-2", pin)
	require.NoError(t, err)
	require.Len(t, next.Mismatches, 1)
	require.True(t, next.Mismatches[0].Difference.Equal(decimal.RequireFromString("1")), "difference %s",
		next.Mismatches[0].Difference.String())
}

// TestReconcileWalletsRefusesReorgedPin: when the pinned block is no longer
// the canonical one at its height, the batch records nothing and fails
// with the non-retryable ErrTypePinReorged.
func TestReconcileWalletsRefusesReorgedPin(t *testing.T) {
	f := newReconFixture(t)
	f.send(walletV, 1_000_000)
	parent := f.pin()
	f.sim.Commit()
	pin := f.pin()
	require.NoError(t, f.sim.Fork(common.HexToHash(parent.Hash)))
	f.send(walletW, 1) // a different block at the pinned height
	f.sim.Commit()     // the fork is now the longer chain
	_, err := f.reconcile("run-reorg", pin)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "err = %v", err)
	require.Equal(t, activities.ErrTypePinReorged, appErr.Type())
	page, err := f.led.Reconciliations(f.ctx, ledger.ReconQuery{Chain: "ETH"})
	require.NoError(t, err)
	require.Empty(t, page.Reconciliations)
}

// deposit records the listener's view of a deposit (the deposits table), as
// the DepositStarter does.
func (f *reconFixture) deposit(r *types.Receipt, to common.Address, amount string) {
	f.t.Helper()
	_, err := f.acts.DB.ExecContext(f.ctx, `INSERT INTO deposits
		(chain, tx_hash, log_index, symbol, address, from_address, amount, block_number, block_hash)
		VALUES ('ETH',?,0,'USDT',?,?,?,?,?)`, r.TxHash.Hex(), evm.Lower(to), evm.Lower(f.auth.From), amount,
		r.BlockNumber.Uint64(), r.BlockHash.Hex())
	require.NoError(f.t, err)
}

func (f *reconFixture) verifyCredits(runID string, pin activities.PinnedBlock) activities.CreditCheckResult {
	f.t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.VerifyCredits, activities.CreditCheckInput{RunID: runID, Block: pin})
	require.NoError(f.t, err)
	var res activities.CreditCheckResult
	require.NoError(f.t, v.Get(&res))
	return res
}

func (f *reconFixture) ops(addr common.Address) []ledger.Op {
	f.t.Helper()
	entries, err := f.led.Journal(f.ctx, "ETH", evm.Lower(addr), "USDT")
	require.NoError(f.t, err)
	var out []ledger.Op
	for _, e := range entries {
		out = append(out, e.Op)
	}
	return out
}

// reorgAway credits a deposit of units to W, confirmed 3 blocks deep on the
// old branch, then reorganises its block away for good: the new branch
// carries a replacement on the same nonce (the money goes elsewhere), so the
// deposit is never mined again. It returns the deposit's hash.
func (f *reconFixture) reorgAway(units int64, amount string) common.Hash {
	f.t.Helper()
	parent, err := f.sim.Client().HeaderByNumber(f.ctx, nil)
	require.NoError(f.t, err)
	tx, err := f.usdt.Transfer(f.auth, walletW, big.NewInt(units))
	require.NoError(f.t, err)
	r := f.mine(tx)
	f.deposit(r, walletW, amount)
	f.credit(walletW, amount, tx.Hash().Hex(), 0)
	f.sim.Commit()
	f.sim.Commit()

	require.NoError(f.t, f.sim.Fork(parent.Hash()))
	replace := *f.auth
	replace.Nonce = new(big.Int).SetUint64(tx.Nonce())
	replace.GasFeeCap = new(big.Int).Mul(tx.GasFeeCap(), big.NewInt(2))
	replace.GasTipCap = new(big.Int).Mul(tx.GasTipCap(), big.NewInt(2))
	// The simulated pool resets to the fork's head in the background: until
	// it has, it still counts the old branch's nonce as used.
	for try := 0; ; try++ {
		_, err = f.usdt.Transfer(&replace, common.HexToAddress("0x00000000000000000000000000000000000a11e9"), big.NewInt(units))
		if err == nil || !strings.Contains(err.Error(), "nonce too low") || try == 100 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(f.t, err)
	for range 5 { // longer than the old branch
		f.sim.Commit()
	}
	_, err = f.sim.Client().TransactionReceipt(f.ctx, tx.Hash())
	require.ErrorIs(f.t, err, ethereum.NotFound, "the deposit must be gone for good")
	return tx.Hash()
}

// TestVerifyCreditsReversesReorgedCredit: a credited deposit whose block is
// reorganised deeper than the confirmations, and never mined again, is
// reversed in the ledger and recorded as a mismatch of its wallet with the
// credit as a ledger_only transfer; a credit still on chain is left alone. A
// retry of the same run reverses nothing twice and still reports it; a later
// run does not report it again. (Before, nothing ever called Ledger.Reverse.)
func TestVerifyCreditsReversesReorgedCredit(t *testing.T) {
	f := newReconFixture(t)
	kept := f.send(walletV, 7_250_000)
	f.deposit(kept, walletV, "7.25")
	f.credit(walletV, "7.25", kept.TxHash.Hex(), 0)
	gone := f.reorgAway(5_000_000, "5")
	pin := f.pin()

	for range 2 { // the second is a retry of the same run
		res := f.verifyCredits("run-c", pin)
		require.Equal(t, 2, res.Checked)
		require.Len(t, res.Flagged, 1)
		fl := res.Flagged[0]
		require.True(t, fl.Amount.Equal(decimal.RequireFromString("5")), "amount %s", fl.Amount.String())
		fl.Amount = protocol.Amount{}
		require.Equal(t, activities.FlaggedCredit{Address: evm.Lower(walletW), Symbol: "USDT", TxHash: gone.Hex(),
			LogIndex: 0, Reason: activities.CreditReversed}, fl)
		require.Len(t, res.Mismatches, 1)
		require.Equal(t, evm.Lower(walletW), res.Mismatches[0].Address)
		require.True(t, res.Mismatches[0].Difference.IsZero(), "the ledger matches the chain once reversed")
	}
	require.Equal(t, []ledger.Op{ledger.OpCredit, ledger.OpReverse}, f.ops(walletW), "reversed once")
	require.Equal(t, []ledger.Op{ledger.OpCredit}, f.ops(walletV))
	bal, err := f.led.Balance(f.ctx, "ETH", evm.Lower(walletW), "USDT")
	require.NoError(t, err)
	require.True(t, bal.Total().IsZero(), "W holds %s", bal.Total())

	w := f.recorded("run-c", walletW)
	require.Equal(t, ledger.ReconMismatch, w.Status)
	require.Len(t, w.Unmatched, 1)
	require.Equal(t, ledger.SideLedgerOnly, w.Unmatched[0].Side)
	require.Equal(t, strings.ToLower(gone.Hex()), w.Unmatched[0].TxHash)
	require.True(t, w.Unmatched[0].Amount.Equal(decimal.RequireFromString("5")))

	next := f.verifyCredits("run-d", pin)
	require.Equal(t, 2, next.Checked)
	require.Empty(t, next.Flagged, "handled by an earlier run")
}

// TestVerifyCreditsFlagsSpentCredit: the reorganised deposit was already
// spent (held by a withdrawal), so the ledger refuses the reversal. The
// activity does not fail: it flags the credit as spent and records the
// mismatch, at every run until an operator resolves it.
func TestVerifyCreditsFlagsSpentCredit(t *testing.T) {
	f := newReconFixture(t)
	gone := f.reorgAway(5_000_000, "5")
	_, err := f.led.Reserve(f.ctx, ledger.ReserveInput{QueueID: "q-spent", Chain: "ETH", Address: evm.Lower(walletW),
		Symbol: "USDT", Amount: decimal.RequireFromString("4"), WorkflowID: "withdraw-q-spent"})
	require.NoError(t, err)
	pin := f.pin()

	for _, run := range []string{"run-s1", "run-s2"} {
		res := f.verifyCredits(run, pin)
		require.Len(t, res.Flagged, 1)
		require.Equal(t, activities.CreditSpent, res.Flagged[0].Reason)
		require.Equal(t, gone.Hex(), res.Flagged[0].TxHash)
		require.Len(t, res.Mismatches, 1)
		require.True(t, res.Mismatches[0].Difference.Equal(decimal.RequireFromString("-5")),
			"difference %s", res.Mismatches[0].Difference.String())
		require.Equal(t, ledger.ReconMismatch, f.recorded(run, walletW).Status)
	}
	require.Equal(t, []ledger.Op{ledger.OpCredit, ledger.OpReserve}, f.ops(walletW), "nothing reversed")
}

// TestVerifyCreditsKeepsMinedCreditItCannotMatch: a credit whose transaction
// is mined and successful but whose recorded log index does not point at the
// credited Transfer (the dev stack once keyed credits by the block-wide log
// index) proves nothing about the money: it is not reversed. Before, such
// credits were reversed on the live dev stack.
func TestVerifyCreditsKeepsMinedCreditItCannotMatch(t *testing.T) {
	f := newReconFixture(t)
	r := f.send(walletV, 7_250_000)
	f.credit(walletV, "7.25", r.TxHash.Hex(), 3) // no log 3 in that receipt
	res := f.verifyCredits("run-m", f.pin())
	require.Equal(t, 1, res.Checked)
	require.Empty(t, res.Flagged)
	require.Equal(t, []ledger.Op{ledger.OpCredit}, f.ops(walletV), "nothing reversed")
}
