package chain_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-sql-driver/mysql"

	"payflow/ledger"
)

// stackPath finds the local stack's description the way stacktest.Path does:
// $PAYFLOW_STACK, else .dev/stack.json in the nearest parent of the working
// directory that has one.
func stackPath() (string, error) {
	if p := os.Getenv("PAYFLOW_STACK"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, ".dev", "stack.json")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New(".dev/stack.json not found: run `make up` first (make test does)")
		}
		dir = parent
	}
}

// testDB creates a fresh, migrated payflow_test_chain_<random> database on the
// stack's MariaDB and drops it when the test ends. A missing stack fails the
// test: these tests claim real SQL semantics (row locks, unique keys).
func testDB(t testing.TB) *sql.DB {
	t.Helper()
	path, err := stackPath()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stack struct {
		MySQLDSN string `json:"mysql_dsn"`
	}
	if err := json.Unmarshal(raw, &stack); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	if stack.MySQLDSN == "" {
		t.Fatalf("%s has no mysql_dsn", path)
	}
	cfg, err := mysql.ParseDSN(stack.MySQLDSN)
	if err != nil {
		t.Fatalf("parsing mysql_dsn: %v", err)
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	name := "payflow_test_chain_" + hex.EncodeToString(suffix)

	adminCfg := cfg.Clone()
	adminCfg.DBName = ""
	admin, err := sql.Open("mysql", adminCfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	// Cleanups run last-in first-out: the test's pool closes before the drop.
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})

	cfg.DBName = name
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(20) // the worker's default (config.DBConfig.MaxOpenConns); the server is shared
	t.Cleanup(func() { db.Close() })
	if err := ledger.Migrate(context.Background(), db); err != nil {
		t.Fatalf("migrating %s: %v", name, err)
	}
	return db
}
