package ledger

// Velocity limits: what one wallet sends, and one recipient receives, of an
// asset in a rolling 24 h. A payment's decision is taken once, after its
// funds are reserved, and stored (velocity_decisions): the sums of the
// decisions before it within the window whose reservations are held or
// settled (a released payment moved nothing and frees its headroom), its own
// amount, the limits, and the verdict. The decisions of one wallet, and of
// one recipient, are serialised by row locks on velocity_locks taken in a
// fixed order in the deciding transaction, so two payments racing for the
// last headroom are decided one after the other and only one fits.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"payflow/internal/sqlerr"
)

// VelocityWindow is how far back velocity limits look.
const VelocityWindow = 24 * time.Hour

// velocityAttempts bounds the retries of a decision after a deadlock.
const velocityAttempts = 5

// VelocityLimits are an asset's limits per wallet and per recipient, in
// its units; zero (or below) is no limit.
type VelocityLimits struct {
	Wallet, Recipient decimal.Decimal
}

// VelocityDecision is a payment's stored velocity verdict.
type VelocityDecision struct {
	// ReservationKey is the payment's reservation (its workflow id).
	ReservationKey string
	Chain, Symbol  string
	// Wallet pays (the reservation's wallet); Recipient receives ("" when
	// the reservation names none: only the wallet's limit applies).
	Wallet, Recipient string
	Amount            decimal.Decimal
	// WalletSum and RecipientSum are what the wallet sent and the recipient
	// received within the window before this payment.
	WalletSum, RecipientSum decimal.Decimal
	// WalletLimit and RecipientLimit are the limits decided against; zero:
	// none.
	WalletLimit, RecipientLimit decimal.Decimal
	OverWallet, OverRecipient   bool
	DecidedAt                   time.Time
	// Replayed: the decision was taken before; this is its stored verdict.
	Replayed bool
}

// Over says whether the payment is over either limit.
func (d VelocityDecision) Over() bool { return d.OverWallet || d.OverRecipient }

// VelocityOver reports which limits wallet and recipient sums (before the
// payment) plus amount go above: the one rule DecideVelocity and a check of
// a stored decision (payflow-signer's) apply.
func VelocityOver(walletSum, recipientSum, amount decimal.Decimal, recipient string, limits VelocityLimits) (overWallet, overRecipient bool) {
	overWallet = limits.Wallet.Sign() > 0 && walletSum.Add(amount).GreaterThan(limits.Wallet)
	overRecipient = recipient != "" && limits.Recipient.Sign() > 0 && recipientSum.Add(amount).GreaterThan(limits.Recipient)
	return overWallet, overRecipient
}

// DecideVelocity decides once whether the held reservation key fits the
// limits, and stores the decision. A second call (a replay, a retry, a
// reset) returns the stored decision, Replayed, whatever the limits say
// now. A reservation that is not held is refused: ErrReservationNotFound,
// or ErrReservationClosed (its payment has decided already).
func (l *Ledger) DecideVelocity(ctx context.Context, key string, limits VelocityLimits) (VelocityDecision, error) {
	if d, ok, err := l.VelocityDecisionOf(ctx, key); err != nil || ok {
		return d, err
	}
	r, err := l.GetReservation(ctx, key)
	if err != nil {
		return VelocityDecision{}, err
	}
	if r.State != "held" {
		return VelocityDecision{}, fmt.Errorf("deciding the velocity of %s: the reservation is %s: %w", key, r.State, ErrReservationClosed)
	}
	decided := false
	for attempt := 0; ; attempt++ {
		decided, err = l.decideVelocity(ctx, r, limits)
		if err == nil || attempt >= velocityAttempts || !(sqlerr.IsDeadlock(err) || sqlerr.IsDuplicateKey(err)) {
			break
		}
	}
	if err != nil {
		return VelocityDecision{}, fmt.Errorf("deciding the velocity of %s: %w", key, err)
	}
	d, ok, err := l.VelocityDecisionOf(ctx, key)
	if err == nil && !ok {
		err = fmt.Errorf("the velocity decision of %s is not there after it was taken", key)
	}
	d.Replayed = !decided
	return d, err
}

// decideVelocity takes r's decision in one transaction, under the locks of
// its wallet and recipient, and says whether it did: a decision stored
// concurrently is kept.
func (l *Ledger) decideVelocity(ctx context.Context, r Reservation, limits VelocityLimits) (bool, error) {
	// Read committed: once a lock is held, each statement sees every
	// decision committed by the lock's previous holders.
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	recipient := norm(r.Recipient)
	scopes := []string{"w|" + r.Chain + "|" + r.Symbol + "|" + norm(r.Address)}
	if recipient != "" {
		scopes = append(scopes, "r|"+r.Chain+"|"+r.Symbol+"|"+recipient)
	}
	slices.Sort(scopes) // one order for every decision: no deadlock between two
	for _, s := range scopes {
		if _, err := tx.ExecContext(ctx, "INSERT INTO velocity_locks (scope, decisions) VALUES (?, 1) "+
			"ON DUPLICATE KEY UPDATE decisions = decisions + 1", s); err != nil {
			return false, fmt.Errorf("locking %s: %w", s, err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM velocity_decisions WHERE reservation_key=?", r.QueueID).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil // decided concurrently: that decision stands
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO velocity_decisions
		(reservation_key, chain, symbol, wallet, recipient, amount, wallet_limit, recipient_limit) VALUES (?,?,?,?,?,?,?,?)`,
		r.QueueID, r.Chain, r.Symbol, norm(r.Address), recipient, r.Amount, limitValue(limits.Wallet), limitValue(limits.Recipient)); err != nil {
		return false, err
	}
	ws, rs, err := velocitySums(ctx, tx, r.QueueID)
	if err != nil {
		return false, err
	}
	ow, or := VelocityOver(ws, rs, r.Amount, recipient, limits)
	if _, err := tx.ExecContext(ctx, `UPDATE velocity_decisions SET wallet_sum=?, recipient_sum=?, over_wallet=?, over_recipient=?
		WHERE reservation_key=?`, ws, rs, ow, or, r.QueueID); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

func limitValue(d decimal.Decimal) any {
	if d.Sign() <= 0 {
		return nil
	}
	return d
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// velocitySumsQuery sums, for the decision of one reservation, the amounts
// of the decisions before it (lower id: under the locks, decided earlier)
// of the same asset and wallet (or recipient), within the window ending at
// its decision, whose reservations are held or settled.
const velocitySumsQuery = `SELECT COALESCE(SUM(v.amount), 0) FROM velocity_decisions d
	JOIN velocity_decisions v ON v.chain = d.chain AND v.symbol = d.symbol AND v.%[1]s = d.%[1]s
		AND v.id < d.id AND v.decided_at > d.decided_at - INTERVAL 24 HOUR
	JOIN reservations r ON r.reservation_key = v.reservation_key AND r.state IN ('held', 'settled')
	WHERE d.reservation_key = ? AND d.%[1]s <> ''`

// velocitySums computes the wallet's and the recipient's sums of the
// decision of key as its decision computed them (or would now).
func velocitySums(ctx context.Context, q querier, key string) (wallet, recipient decimal.Decimal, err error) {
	if err := q.QueryRowContext(ctx, fmt.Sprintf(velocitySumsQuery, "wallet"), key).Scan(&wallet); err != nil {
		return wallet, recipient, fmt.Errorf("summing the wallet's payments before %s: %w", key, err)
	}
	if err := q.QueryRowContext(ctx, fmt.Sprintf(velocitySumsQuery, "recipient"), key).Scan(&recipient); err != nil {
		return wallet, recipient, fmt.Errorf("summing the recipient's payments before %s: %w", key, err)
	}
	return wallet, recipient, nil
}

// VelocitySums recomputes the sums of the stored decision of key the way it
// was taken, from the reservations' states now: a reservation released
// since no longer counts, so the sums are at most the stored ones unless
// the decision was wrong. A key without a decision sums to zero.
func (l *Ledger) VelocitySums(ctx context.Context, key string) (wallet, recipient decimal.Decimal, err error) {
	return velocitySums(ctx, l.db, key)
}

// VelocityDecisionOf reads the stored decision of key (ok false: none).
func (l *Ledger) VelocityDecisionOf(ctx context.Context, key string) (VelocityDecision, bool, error) {
	d := VelocityDecision{ReservationKey: key, Replayed: true}
	var wl, rl decimal.NullDecimal
	err := l.db.QueryRowContext(ctx, `SELECT chain, symbol, wallet, recipient, amount, wallet_sum, recipient_sum,
		wallet_limit, recipient_limit, over_wallet, over_recipient, decided_at FROM velocity_decisions WHERE reservation_key=?`, key).
		Scan(&d.Chain, &d.Symbol, &d.Wallet, &d.Recipient, &d.Amount, &d.WalletSum, &d.RecipientSum, &wl, &rl,
			&d.OverWallet, &d.OverRecipient, &d.DecidedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return VelocityDecision{}, false, nil
	}
	if err != nil {
		return VelocityDecision{}, false, fmt.Errorf("reading the velocity decision of %s: %w", key, err)
	}
	if wl.Valid {
		d.WalletLimit = wl.Decimal
	}
	if rl.Valid {
		d.RecipientLimit = rl.Decimal
	}
	return d, true, nil
}
