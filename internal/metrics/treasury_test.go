package metrics_test

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"payflow/config"
	"payflow/internal/metrics"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// TestSamplerTreasuryTiers: per chain and asset, the hot tier's balance
// (hot and collection wallets, not the gas wallet) and the cold wallet's,
// on chain, beside each asset's own hot_ceiling and hot_floor; an asset
// without a bound has no series of it, and a chain without a cold wallet
// no cold series.
func TestSamplerTreasuryTiers(t *testing.T) {
	db := stacktest.TestDB(t, "metrics")
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, db))
	hot, hot2, coll, gas, cold := addr(11), addr(12), addr(13), addr(14), addr(15)
	for _, w := range [][2]string{{hot, "hot"}, {hot2, "hot"}, {coll, "collection"}, {gas, "gas"}} {
		exec(t, db, "INSERT INTO wallets (chain, address, kind) VALUES ('ETH',?,?)", w[0], w[1])
	}
	_, err := ledger.NewWallets(db, nil).RegisterCold(ctx, "ETH", cold)
	require.NoError(t, err)
	ether := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	usdt := common.HexToAddress(usdtAddr)
	bal := balances{
		wei: map[common.Address]*big.Int{common.HexToAddress(hot): new(big.Int).Mul(big.NewInt(2), ether),
			common.HexToAddress(coll): ether, common.HexToAddress(gas): new(big.Int).Mul(big.NewInt(50), ether),
			common.HexToAddress(cold): new(big.Int).Mul(big.NewInt(40), ether)},
		units: map[[2]common.Address]*big.Int{{usdt, common.HexToAddress(hot)}: big.NewInt(1_500_000),
			{usdt, common.HexToAddress(hot2)}: big.NewInt(500_000), {usdt, common.HexToAddress(coll)}: big.NewInt(8_000_000),
			{usdt, common.HexToAddress(cold)}: big.NewInt(90_000_000)},
	}
	eth := config.ChainConfig{ColdAddress: cold,
		Native: config.NativeCoin{Symbol: "ETH", Treasury: config.Treasury{HotCeiling: "5", HotFloor: "1.5"}},
		Tokens: map[string]config.Token{"USDT": {Address: usdtAddr, Decimals: 6, Treasury: config.Treasury{HotFloor: "20"}}}}
	bsc := config.ChainConfig{Native: config.NativeCoin{Symbol: "BNB"}}
	s := metrics.NewSampler(wired(metrics.SamplerConfig{Chains: []metrics.SamplerChain{
		{Name: "ETH", Assets: eth, Node: &node{head: 5}, Balances: bal},
		{Name: "BSC", Assets: bsc, Node: &node{head: 5}, Balances: balances{}}},
		PaymentStep: "transfer", ConfirmTimeout: time.Minute}, db), db, nil)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(s))
	require.NoError(t, s.Sample(ctx))

	v := values(t, reg)
	require.Equal(t, 3.0, v[`payflow_treasury_hot_balance{chain="ETH",symbol="native"}`], "hot 2 + collection 1; the gas wallet's 50 is not the tier's")
	require.Equal(t, 10.0, v[`payflow_treasury_hot_balance{chain="ETH",symbol="USDT"}`], "1.5 + 0.5 + 8")
	require.Equal(t, 40.0, v[`payflow_treasury_cold_balance{chain="ETH",symbol="native"}`])
	require.Equal(t, 90.0, v[`payflow_treasury_cold_balance{chain="ETH",symbol="USDT"}`])
	require.Equal(t, 90.0, v[`payflow_wallet_balance{chain="ETH",kind="cold",symbol="USDT"}`])
	require.Equal(t, 5.0, v[`payflow_treasury_hot_ceiling{chain="ETH",symbol="native"}`])
	require.Equal(t, 1.5, v[`payflow_treasury_hot_floor{chain="ETH",symbol="native"}`])
	require.Equal(t, 20.0, v[`payflow_treasury_hot_floor{chain="ETH",symbol="USDT"}`])
	require.NotContains(t, v, `payflow_treasury_hot_ceiling{chain="ETH",symbol="USDT"}`, "USDT has no ceiling")
	for k := range v {
		require.NotContains(t, k, `chain="BSC",symbol`, "BSC has no wallets and no bounds: no tier series")
	}
}
