package evm_test

import (
	"context"
	"database/sql"
	"testing"

	"payflow/internal/stacktest"
	"payflow/ledger"
)

// testDB creates a fresh, migrated payflow_test_chain_<random> database on the
// stack's MariaDB and drops it when the test ends. A missing stack fails the
// test: these tests claim real SQL semantics (row locks, unique keys).
func testDB(t testing.TB) *sql.DB {
	t.Helper()
	db := stacktest.TestDB(t, "chain")
	db.SetMaxOpenConns(20) // the worker's default (config.DBConfig.MaxOpenConns); the server is shared
	if err := ledger.Migrate(context.Background(), db); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	return db
}
