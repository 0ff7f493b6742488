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
// the same on every dev chain (payflowctl devstack imports one key on each),
// read on ETH.
func walletByLabel(t testing.TB, db *sql.DB, label string) string {
	t.Helper()
	w, err := ledger.NewWallets(db, nil).ByLabel(context.Background(), "ETH", label)
	if err != nil {
		t.Fatalf("dev wallet %s: %v", label, err)
	}
	return w.Address
}
