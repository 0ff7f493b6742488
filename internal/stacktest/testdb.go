package stacktest

import (
	"context"
	"database/sql"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestDB creates a fresh database payflow_test_<name>_<random> on the stack's
// MariaDB, returns a handle to it and drops it when the test ends. The caller
// applies migrations (ledger.Migrate) so this package stays free of ledger.
func TestDB(t testing.TB, name string) *sql.DB {
	t.Helper()
	st := Load(t)
	cfg, err := mysql.ParseDSN(st.MySQLDSN)
	if err != nil {
		t.Fatalf("parsing mysql_dsn: %v", err)
	}
	dbName := "payflow_test_" + name + "_" + RandomID("")
	admin, err := sql.Open("mysql", st.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE `" + dbName + "`"); err != nil {
		t.Fatalf("creating %s: %v", dbName, err)
	}
	cfg.DBName = dbName
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(100)
	t.Cleanup(func() {
		db.Close()
		if a, err := sql.Open("mysql", st.MySQLDSN); err == nil {
			_, _ = a.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+dbName+"`")
			a.Close()
		}
	})
	return db
}
