package integration

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"payflow/ledger"
)

func stacktestLower(a common.Address) string { return strings.ToLower(a.Hex()) }

func stacktestLowerHash(h common.Hash) string { return strings.ToLower(h.Hex()) }

// walletByLabel returns the address of a dev wallet ("user-1", "hot", ...):
// the same on every dev chain (payflowctl devstack registers each signer key on every chain),
// read on ETH.
func walletByLabel(t testing.TB, db *sql.DB, label string) string {
	t.Helper()
	w, err := ledger.NewWallets(db, nil).ByLabel(context.Background(), "ETH", label)
	if err != nil {
		t.Fatalf("dev wallet %s: %v", label, err)
	}
	return w.Address
}

// withoutPayflowEnv is env minus its PAYFLOW_* variables, so that a
// command the test runs reads only the settings the test gives it.
func withoutPayflowEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PAYFLOW_") {
			out = append(out, kv)
		}
	}
	return out
}
