package intake

import (
	"io"
	"log/slog"
	"testing"

	"payflow/config"
	"payflow/protocol"
)

// TestApprovalThresholdIsTheAssets: a payment waits for
// approval above its own asset's threshold on its own chain, never above one
// number shared by every asset.
func TestApprovalThresholdIsTheAssets(t *testing.T) {
	cfg := config.Default()
	cfg.Chains = map[string]config.ChainConfig{
		"ETH": {Native: config.NativeCoin{Symbol: "ETH", ApprovalThreshold: "10"},
			Tokens: map[string]config.Token{"USDT": {ApprovalThreshold: "50000"}, "USDC": {ApprovalThreshold: "40000"}}},
		"BSC": {Native: config.NativeCoin{Symbol: "BNB", ApprovalThreshold: "30"},
			Tokens: map[string]config.Token{"USDT": {ApprovalThreshold: "20000"}}},
	}
	cfg.ResolveChains()
	in := New(cfg, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, tc := range []struct{ chain, symbol, want string }{
		{"ETH", "ETH", "10"},
		{"ETH", "USDT", "50000"},
		{"ETH", "usdc", "40000"},
		{"BSC", "BNB", "30"},
		{"bsc", "USDT", "20000"},
	} {
		if got := in.approvalThreshold(protocol.PaymentRequest{Chain: tc.chain, Symbol: tc.symbol}); got != tc.want {
			t.Errorf("%s %s: approval threshold %q, want %q", tc.chain, tc.symbol, got, tc.want)
		}
	}
}
