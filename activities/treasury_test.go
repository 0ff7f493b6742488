package activities_test

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"payflow/activities"
	"payflow/chain"
	"payflow/chain/evm"
	"payflow/config"
	"payflow/ledger"
	"payflow/protocol"
)

// TestTreasuryExcessPerAsset: the hot tier of each asset (hot and
// collection wallets payflow holds the key of; not a watch-only hot wallet,
// not a deposit wallet) is compared with that asset's own hot_ceiling, in
// its units. Nothing is planned or reserved at or below the ceiling; above
// it, the excess is reserved from the wallet holding the most, at most its
// available balance, for the cold address; for the native coin the gas of
// its transfer stays. A reservation in flight lowers the tier's available,
// so a second treasury sweep of the asset finds nothing more to move.
func TestTreasuryExcessPerAsset(t *testing.T) {
	f := newReconFixture(t)
	const (
		cold       = "0x00000000000000000000000000000000000c01d0"
		hot1       = "0x00000000000000000000000000000000000a0701"
		hot2       = "0x00000000000000000000000000000000000a0702"
		collection = "0x00000000000000000000000000000000000c0113"
		watchHot   = "0x00000000000000000000000000000000000a07ff" // no key: not part of the tier
		deposit    = "0x00000000000000000000000000000000000de9a1"
	)
	f.acts.Assets.MaxFeeGwei = 100
	f.acts.Assets.ColdAddress = cold
	f.acts.Assets.Native = config.NativeCoin{Symbol: "ETH", Treasury: config.Treasury{HotCeiling: "10"}}
	usdt := f.acts.Assets.Tokens["USDT"]
	usdt.HotCeiling = "1000"
	f.acts.Assets.Tokens["USDT"] = usdt
	f.acts.Assets.Tokens["USDC"] = config.Token{Address: "0x00000000000000000000000000000000000005dc", Decimals: 6}

	db := f.led.DB()
	for _, w := range []struct{ addr, kind, holder string }{
		{hot1, "hot", "signer"}, {hot2, "hot", "signer"}, {collection, "collection", "signer"},
		{watchHot, "hot", "none"}, {deposit, "deposit", "signer"},
	} {
		_, err := db.Exec("INSERT INTO wallets (chain, address, kind, label, key_holder) VALUES ('ETH', ?, ?, 'treasury test', ?)",
			w.addr, w.kind, w.holder)
		require.NoError(t, err)
	}
	credit := func(i int, addr, symbol, amount string) {
		t.Helper()
		_, err := f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: addr, Symbol: symbol,
			Amount: decimal.RequireFromString(amount), TxHash: "0x7ea5", LogIndex: uint(i), Reference: "test"})
		require.NoError(t, err)
	}
	credit(0, hot1, "USDT", "300")
	credit(1, collection, "USDT", "900")
	credit(2, hot2, "USDT", "100")
	credit(3, watchHot, "USDT", "5000")
	credit(4, deposit, "USDT", "5000")
	credit(5, hot1, "ETH", "6")
	credit(6, collection, "ETH", "4")
	credit(7, hot1, "USDC", "700")

	plan := func(in activities.TreasuryPlanInput) activities.TreasuryPlan {
		t.Helper()
		v, err := f.env.ExecuteActivity(f.acts.PlanTreasury, in)
		require.NoError(t, err)
		var p activities.TreasuryPlan
		require.NoError(t, v.Get(&p))
		return p
	}
	p := plan(activities.TreasuryPlanInput{})
	require.Equal(t, cold, p.Cold)
	require.Equal(t, []activities.TreasuryCandidate{{Symbol: "USDT", Address: collection, Total: protocol.MustAmount("1300"),
		Ceiling: protocol.MustAmount("1000"), Excess: protocol.MustAmount("300")}}, p.Candidates,
		"USDT's tier holds 1300 over 1000; ETH's holds exactly its ceiling of 10; USDC has no ceiling")
	p = plan(activities.TreasuryPlanInput{Symbols: []string{"USDC"}, Ceiling: protocol.MustAmount("650")})
	require.Len(t, p.Candidates, 1, "a run of USDC alone with its own ceiling")
	require.Equal(t, "50", p.Candidates[0].Excess.String())
	p = plan(activities.TreasuryPlanInput{Symbols: []string{"USDC", "USDT"}, Ceiling: protocol.MustAmount("1")})
	require.Len(t, p.Candidates, 1, "a run of several symbols ignores the override: only USDT, above its own ceiling")
	require.Equal(t, "USDT", p.Candidates[0].Symbol)

	reserve := func(key, addr, symbol, ceiling string) activities.SweepReserveResult {
		t.Helper()
		in := activities.SweepReserveInput{Key: key, WorkflowID: "treasury-test", Address: addr, Symbol: symbol,
			Collection: cold, Treasury: true}
		if ceiling != "" {
			in.Ceiling = protocol.MustAmount(ceiling)
		}
		v, err := f.env.ExecuteActivity(f.acts.ReserveSweep, in)
		require.NoError(t, err)
		var r activities.SweepReserveResult
		require.NoError(t, v.Get(&r))
		return r
	}
	r := reserve("treasury-test@1/USDT", collection, "USDT", "")
	require.True(t, r.Reserved)
	require.Equal(t, "300", r.Amount.String(), "the excess, from the collection wallet's 900")
	res, err := f.led.GetReservation(f.ctx, "treasury-test@1/USDT")
	require.NoError(t, err)
	require.Equal(t, cold, res.Recipient, "the reservation names the cold address, as the signer requires")
	require.Equal(t, "300", reserve("treasury-test@1/USDT", collection, "USDT", "").Amount.String(), "a repeat returns its reservation")
	r = reserve("treasury-test@2/USDT", hot1, "USDT", "")
	require.False(t, r.Reserved, "the 300 in flight left the tier at its ceiling: nothing more to move")

	r = reserve("treasury-test@3/USDT", hot2, "USDT", "800")
	require.True(t, r.Reserved)
	require.Equal(t, "100", r.Amount.String(), "an excess of 200 above 800 is capped at hot2's own 100")

	r = reserve("treasury-test@1/ETH", hot1, "ETH", "")
	require.False(t, r.Reserved, "10 ETH is not above ETH's ceiling of 10")
	credit(8, hot1, "ETH", "0.5")
	r = reserve("treasury-test@2/ETH", hot1, "ETH", "")
	require.True(t, r.Reserved)
	require.Equal(t, "0.5", r.Amount.String(), "the 0.5 above 10; hot1 keeps the rest, its gas among it")
	r = reserve("treasury-test@3/ETH", hot1, "ETH", "1")
	require.True(t, r.Reserved)
	// 21,000 gas at the 100 gwei cap stays for the transfer's gas.
	require.Equal(t, "5.9979", r.Amount.String(), "hot1's 6 available, less 0.0021 of gas, is below the excess of 9")

	_, err = f.env.ExecuteActivity(f.acts.ReserveSweep, activities.SweepReserveInput{Key: "treasury-test@1/dep", WorkflowID: "treasury-test",
		Address: deposit, Symbol: "USDT", Collection: cold, Treasury: true})
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, activities.ErrTypeUnknownWallet, appErr.Type(), "a deposit wallet is not part of the hot tier")

	f.acts.Assets.ColdAddress = ""
	_, err = f.env.ExecuteActivity(f.acts.PlanTreasury, activities.TreasuryPlanInput{Symbols: []string{"USDC"}, Ceiling: protocol.MustAmount("1")})
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, activities.ErrTypeNoSweepTarget, appErr.Type(), "above a ceiling with no cold address")
}

// TestRefillFromColdIsBookedOnBothSides: a confirmed transfer from the
// chain's cold wallet into a managed wallet (an operator's refill of the hot
// tier, signed outside payflow) credits the receiving wallet and debits the
// cold wallet the amount and, in the native coin, the fee its transaction
// paid, once however often it is booked; a transfer from another sender
// debits nobody.
func TestRefillFromColdIsBookedOnBothSides(t *testing.T) {
	f := newReconFixture(t)
	f.acts.Assets.Native = config.NativeCoin{Symbol: "ETH"}
	cold := evm.Lower(f.auth.From) // the deployer stands for the cold wallet: its key is the test's, not payflow's
	hot := "0x00000000000000000000000000000000000a0709"
	_, err := f.acts.Wallets.RegisterCold(f.ctx, "ETH", cold)
	require.NoError(t, err)
	for i, c := range []struct{ symbol, amount string }{{"USDT", "1000"}, {"ETH", "2"}} {
		_, err := f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: cold, Symbol: c.symbol,
			Amount: decimal.RequireFromString(c.amount), TxHash: "0xc01d", LogIndex: uint(i), Reference: "swept to cold"})
		require.NoError(t, err)
	}
	r := f.send(common.HexToAddress(hot), 250_000_000) // 250 USDT, cold to hot
	fee := chain.FromUnits(new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice), config.NativeDecimals)
	require.True(t, fee.IsPositive())
	in := activities.CreditInput{Chain: "ETH", Address: hot, Symbol: "USDT", Amount: protocol.MustAmount("250"),
		TxHash: r.TxHash.Hex(), LogIndex: 0, WorkflowID: "deposit-refill", From: cold}
	for range 2 {
		_, err := f.env.ExecuteActivity(f.acts.CreditDeposit, in)
		require.NoError(t, err)
	}
	total := func(addr, symbol string) string {
		b, err := f.led.Balance(f.ctx, "ETH", addr, symbol)
		require.NoError(t, err)
		return b.Total().String()
	}
	require.Equal(t, "250", total(hot, "USDT"), "the hot wallet is credited once")
	require.Equal(t, "750", total(cold, "USDT"), "the cold wallet is debited once")
	require.Equal(t, decimal.RequireFromString("2").Sub(fee).String(), total(cold, "ETH"), "and its fee, once")

	// From another sender: the receiving wallet only.
	r = f.send(common.HexToAddress(hot), 1_000_000)
	_, err = f.env.ExecuteActivity(f.acts.CreditDeposit, activities.CreditInput{Chain: "ETH", Address: hot, Symbol: "USDT",
		Amount: protocol.MustAmount("1"), TxHash: r.TxHash.Hex(), WorkflowID: "deposit-other",
		From: "0x00000000000000000000000000000000000f00f0"})
	require.NoError(t, err)
	require.Equal(t, "251", total(hot, "USDT"))
	require.Equal(t, "750", total(cold, "USDT"))
}
