package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"payflow/deploy"
)

// Migrate applies the numbered SQL files of deploy.Migrations that are not yet
// recorded in schema_migrations, in name order. Safe to run concurrently from
// several processes: a named lock serialises them.
func Migrate(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("getting connection: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('payflow_migrate', 60)").Scan(&got); err != nil || got.Int64 != 1 {
		return fmt.Errorf("taking migration lock: %v", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK('payflow_migrate')")

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name VARCHAR(255) PRIMARY KEY, applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	names, err := fs.Glob(deploy.Migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE name = ?", base).Scan(&n); err != nil {
			return fmt.Errorf("checking migration %s: %w", base, err)
		}
		if n > 0 {
			continue
		}
		body, err := deploy.Migrations.ReadFile(name)
		if err != nil {
			return err
		}
		for _, stmt := range splitStatements(string(body)) {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("applying migration %s: %w", base, err)
			}
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO schema_migrations (name) VALUES (?)", base); err != nil {
			return fmt.Errorf("recording migration %s: %w", base, err)
		}
	}
	return nil
}

// splitStatements splits on ';' at line ends, dropping '--' comment lines.
// Migrations keep to that shape (no procedures, no ';' inside strings).
func splitStatements(sqlText string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sqlText, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}
