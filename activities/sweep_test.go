package activities_test

import (
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/activities"
	"payflow/config"
	"payflow/ledger"
	"payflow/protocol"
)

// TestSweepUsesEachAssetsThreshold: each asset is swept above its own
// sweep_threshold, in its own units; a run's Threshold counts only as the
// override of the one symbol it names (the Sweep workflow passes none for a
// run of several symbols). Before, one threshold served every asset: native
// coin was only swept above 100,000 of it, i.e. never.
func TestSweepUsesEachAssetsThreshold(t *testing.T) {
	f := newReconFixture(t)
	f.acts.Collection = "0x00000000000000000000000000000000000c011e"
	f.acts.Assets.Native = config.NativeCoin{Symbol: "ETH", SweepThreshold: "0.5"}
	usdt := f.acts.Assets.Tokens["USDT"]
	usdt.SweepThreshold = "100"
	f.acts.Assets.Tokens["USDT"] = usdt
	f.acts.Assets.Tokens["USDC"] = config.Token{Address: "0x00000000000000000000000000000000000005dc", Decimals: 6,
		SweepThreshold: "50"}

	const (
		walletA = "0x00000000000000000000000000000000000de901" // ETH above 0.5, USDT below 100
		walletB = "0x00000000000000000000000000000000000de902" // USDT above 100, ETH below 0.5
		walletC = "0x00000000000000000000000000000000000de903" // USDC, below the run's 100,000
	)
	db := f.led.DB()
	for _, w := range []string{walletA, walletB, walletC} {
		_, err := db.Exec("INSERT INTO wallets (chain, address, kind, label, enc_key, key_holder) VALUES ('ETH', ?, 'deposit', 'sweep test', X'01', 'master')", w)
		require.NoError(t, err)
	}
	for i, c := range []struct{ addr, symbol, amount string }{
		{walletA, "ETH", "2"}, {walletA, "USDT", "99.5"},
		{walletB, "USDT", "150"}, {walletB, "ETH", "0.4"},
		{walletC, "USDC", "20"},
	} {
		_, err := f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: c.addr, Symbol: c.symbol,
			Amount: decimal.RequireFromString(c.amount), TxHash: "0x5ee7", LogIndex: uint(i), Reference: "test"})
		require.NoError(t, err)
	}

	plan := func(symbols []string, threshold string) []activities.SweepCandidate {
		t.Helper()
		v, err := f.env.ExecuteActivity(f.acts.PlanSweep, activities.SweepPlanInput{Symbols: symbols,
			Threshold: protocol.MustAmount(threshold), Addresses: []string{walletA, walletB, walletC}})
		require.NoError(t, err)
		var p activities.SweepPlan
		require.NoError(t, v.Get(&p))
		return p.Candidates
	}
	require.Equal(t, []activities.SweepCandidate{
		{Address: walletA, Symbols: []string{"ETH"}},
		{Address: walletB, Symbols: []string{"USDT"}},
	}, plan(nil, "0"), "ETH above 0.5 ETH and USDT above 100 USDT; 20 USDC is below USDC's 50")
	require.Equal(t, []activities.SweepCandidate{
		{Address: walletC, Symbols: []string{"USDC"}},
	}, plan([]string{"USDC"}, "10"), "a run of USDC alone, above its own 10 USDC")

	reserve := func(key, addr, symbol string) activities.SweepReserveResult {
		t.Helper()
		v, err := f.env.ExecuteActivity(f.acts.ReserveSweep, activities.SweepReserveInput{Key: key, WorkflowID: "sweep-test",
			Address: addr, Symbol: symbol})
		require.NoError(t, err)
		var r activities.SweepReserveResult
		require.NoError(t, v.Get(&r))
		return r
	}
	r := reserve("sweep-test/B/USDT", walletB, "USDT")
	require.True(t, r.Reserved, "150 USDT is above USDT's 100")
	require.Equal(t, "150", r.Amount.String())
	r = reserve("sweep-test/A/USDT", walletA, "USDT")
	require.False(t, r.Reserved, "99.5 USDT is not above USDT's 100")
	r = reserve("sweep-test/C/USDC", walletC, "USDC")
	require.False(t, r.Reserved, "20 USDC is not above USDC's 50")
}
