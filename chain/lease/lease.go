// Package lease runs work only in the process holding a named lease row of
// MariaDB (table leases): one listener and one tracker per chain, however
// many workers run. It knows nothing of a chain family.
package lease

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// RunWithLease runs fn only while this process holds the named lease in
// MariaDB, so that however many workers run, one listener per chain does.
// The lease is renewed every ttl/4; if a renewal fails, fn's context is
// cancelled and the lease is sought again. When the holder dies, its lease
// expires after ttl and another process, asking every ttl/4, takes over from
// the persisted cursor within ttl·5/4. Blocks until ctx ends, then releases
// the lease.
func RunWithLease(ctx context.Context, db *sql.DB, name, holder string, ttl time.Duration, log *slog.Logger,
	fn func(ctx context.Context) error) {
	if log == nil {
		log = slog.Default()
	}
	every := ttl / 4
	for ctx.Err() == nil {
		ok, err := acquireLease(ctx, db, name, holder, ttl)
		if err != nil {
			log.Warn("lease check failed", "lease", name, "err", err)
		}
		if !ok {
			select {
			case <-ctx.Done():
			case <-time.After(every):
			}
			continue
		}
		log.Info("lease acquired", "lease", name, "holder", holder)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := fn(runCtx); err != nil && runCtx.Err() == nil {
				log.Error("leased task failed", "lease", name, "err", err)
			}
		}()
		tick := time.NewTicker(every)
	hold:
		for {
			select {
			case <-ctx.Done():
				break hold
			case <-done:
				break hold
			case <-tick.C:
				if ok, err := acquireLease(ctx, db, name, holder, ttl); !ok {
					log.Warn("lease lost; stopping", "lease", name, "err", err)
					break hold
				}
			}
		}
		tick.Stop()
		cancel()
		<-done
	}
	_, _ = db.ExecContext(context.WithoutCancel(ctx), "DELETE FROM leases WHERE name=? AND holder=?", name, holder)
}

// acquireLease takes or renews the lease; it reports whether we hold it.
func acquireLease(ctx context.Context, db *sql.DB, name, holder string, ttl time.Duration) (bool, error) {
	ms := ttl.Milliseconds()
	res, err := db.ExecContext(ctx, `UPDATE leases SET holder=?, expires_at=NOW(6) + INTERVAL ? * 1000 MICROSECOND
		WHERE name=? AND (holder=? OR expires_at < NOW(6))`, holder, ms, name, holder)
	if err != nil {
		return false, fmt.Errorf("renewing lease %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	res, err = db.ExecContext(ctx, `INSERT IGNORE INTO leases (name, holder, expires_at)
		VALUES (?, ?, NOW(6) + INTERVAL ? * 1000 MICROSECOND)`, name, holder, ms)
	if err != nil {
		return false, fmt.Errorf("taking lease %s: %w", name, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Holder names the process holding lease name now, "" when nobody does (or
// its lease expired).
func Holder(ctx context.Context, db *sql.DB, name string) (string, error) {
	var h string
	err := db.QueryRowContext(ctx, "SELECT holder FROM leases WHERE name=? AND expires_at > NOW(6)", name).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the holder of lease %s: %w", name, err)
	}
	return h, nil
}
