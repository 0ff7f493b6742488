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
//
// The sums come from per-minute totals (velocity_totals): a decision adds
// its amount to its minute's total of its wallet and of its recipient, and a
// release takes it out again in the transaction that releases the
// reservation (releaseVelocity, from the batch). A decision reads at most
// 24 h of minutes, however many payments the wallet made. The window counts
// whole minutes: a payment counts towards the decisions of the minutes up to
// 24 h after its own minute, so the window errs by under a minute on the
// side of the limit.

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
	var d VelocityDecision
	decided := false
	for attempt := 0; ; attempt++ {
		d, decided, err = l.decideVelocity(ctx, r, limits)
		if err == nil || attempt >= velocityAttempts || !(sqlerr.IsDeadlock(err) || sqlerr.IsDuplicateKey(err)) {
			break
		}
	}
	if err != nil {
		return VelocityDecision{}, fmt.Errorf("deciding the velocity of %s: %w", key, err)
	}
	if decided {
		return d, nil // what it stored: no need to read it back
	}
	d, ok, err := l.VelocityDecisionOf(ctx, key) // decided concurrently: that decision stands
	if err == nil && !ok {
		err = fmt.Errorf("the velocity decision of %s is not there after it was taken", key)
	}
	return d, err
}

// walletScope and recipientScope name a wallet's and a recipient's rows of
// an asset in velocity_locks and velocity_totals.
func walletScope(chain, symbol, wallet string) string {
	return "w|" + chain + "|" + symbol + "|" + norm(wallet)
}

func recipientScope(chain, symbol, recipient string) string {
	if norm(recipient) == "" {
		return ""
	}
	return "r|" + chain + "|" + symbol + "|" + norm(recipient)
}

// decideVelocity takes r's decision in one transaction, under the locks of
// its wallet and recipient, and returns it as stored, with whether it took
// it: a decision stored concurrently is kept (and not returned).
func (l *Ledger) decideVelocity(ctx context.Context, r Reservation, limits VelocityLimits) (VelocityDecision, bool, error) {
	none := VelocityDecision{}
	// Read committed: once a lock is held, each statement sees every
	// decision (and release) committed before.
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return none, false, err
	}
	defer tx.Rollback()
	ws, rs := walletScope(r.Chain, r.Symbol, r.Address), recipientScope(r.Chain, r.Symbol, r.Recipient)
	scopes := []string{ws}
	if rs != "" {
		scopes = append(scopes, rs)
	}
	slices.Sort(scopes) // one order for every decision: no deadlock between two
	for _, s := range scopes {
		if _, err := tx.ExecContext(ctx, "INSERT INTO velocity_locks (scope, decisions) VALUES (?, 1) "+
			"ON DUPLICATE KEY UPDATE decisions = decisions + 1", s); err != nil {
			return none, false, fmt.Errorf("locking %s: %w", s, err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM velocity_decisions WHERE reservation_key=?", r.QueueID).Scan(&n); err != nil {
		return none, false, err
	}
	if n > 0 {
		return none, false, nil // decided concurrently: that decision stands
	}
	// Held until the commit: a release waits for the decision, and then
	// takes its amount out of the totals.
	var state string
	if err := tx.QueryRowContext(ctx, "SELECT state FROM reservations WHERE reservation_key=? LOCK IN SHARE MODE", r.QueueID).
		Scan(&state); err != nil {
		return none, false, fmt.Errorf("reading reservation %s: %w", r.QueueID, err)
	}
	if state != "held" {
		return none, false, fmt.Errorf("the reservation of %s is %s: %w", r.QueueID, state, ErrReservationClosed)
	}
	var decidedAt time.Time // as stored (RETURNING): a replay reads the same
	if err := tx.QueryRowContext(ctx, `INSERT INTO velocity_decisions (reservation_key, chain, symbol, wallet, recipient,
		wallet_scope, recipient_scope, amount, wallet_limit, recipient_limit, decided_at, minute)
		VALUES (?,?,?,?,?,?,?,?,?,?, UTC_TIMESTAMP(6), DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:00'))
		RETURNING decided_at`,
		r.QueueID, r.Chain, r.Symbol, norm(r.Address), norm(r.Recipient), ws, rs, r.Amount,
		limitValue(limits.Wallet), limitValue(limits.Recipient)).Scan(&decidedAt); err != nil {
		return none, false, err
	}
	// Under the locks, every decision before this one is in the totals,
	// its own minute's too.
	wsum, rsum, err := windowTotals(ctx, tx, r.QueueID, "<=")
	if err != nil {
		return none, false, err
	}
	ow, or := VelocityOver(wsum, rsum, r.Amount, rs, limits)
	if _, err := tx.ExecContext(ctx, `UPDATE velocity_decisions SET wallet_sum=?, recipient_sum=?, over_wallet=?, over_recipient=?
		WHERE reservation_key=?`, wsum, rsum, ow, or, r.QueueID); err != nil {
		return none, false, err
	}
	for _, s := range scopes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO velocity_totals (scope, minute, amount)
			SELECT ?, minute, amount FROM velocity_decisions WHERE reservation_key=?
			ON DUPLICATE KEY UPDATE amount = velocity_totals.amount + VALUES(amount)`, s, r.QueueID); err != nil {
			return none, false, fmt.Errorf("adding %s to the totals of %s: %w", r.QueueID, s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return none, false, err
	}
	return VelocityDecision{ReservationKey: r.QueueID, Chain: r.Chain, Symbol: r.Symbol, Wallet: norm(r.Address),
		Recipient: norm(r.Recipient), Amount: r.Amount, WalletSum: wsum, RecipientSum: rsum,
		WalletLimit: storedLimit(limits.Wallet), RecipientLimit: storedLimit(limits.Recipient),
		OverWallet: ow, OverRecipient: or, DecidedAt: decidedAt}, true, nil
}

// storedLimit is a limit as the decision stores it and reads it back:
// zero for none, else at the column's 18 decimals.
func storedLimit(d decimal.Decimal) decimal.Decimal {
	if d.Sign() <= 0 {
		return decimal.Zero
	}
	return d.Round(18)
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

// windowTotalsQuery sums the totals of a decision's wallet (or recipient)
// scope over the minutes from 24 h before its minute to its minute (upTo
// "<=") or to the minute before it ("<").
const windowTotalsQuery = `SELECT COALESCE(SUM(t.amount), 0) FROM velocity_decisions d
	JOIN velocity_totals t ON t.scope = d.%[1]s AND t.minute >= d.minute - INTERVAL 24 HOUR AND t.minute %[2]s d.minute
	WHERE d.reservation_key = ? AND d.%[1]s <> ''`

func windowTotals(ctx context.Context, q querier, key, upTo string) (wallet, recipient decimal.Decimal, err error) {
	if err := q.QueryRowContext(ctx, fmt.Sprintf(windowTotalsQuery, "wallet_scope", upTo), key).Scan(&wallet); err != nil {
		return wallet, recipient, fmt.Errorf("summing the wallet's payments before %s: %w", key, err)
	}
	if err := q.QueryRowContext(ctx, fmt.Sprintf(windowTotalsQuery, "recipient_scope", upTo), key).Scan(&recipient); err != nil {
		return wallet, recipient, fmt.Errorf("summing the recipient's payments before %s: %w", key, err)
	}
	return wallet, recipient, nil
}

// ownMinuteQuery sums the decisions of a decision's own minute taken before
// it (lower id: under the locks, decided earlier) whose reservations are
// held or settled.
const ownMinuteQuery = `SELECT COALESCE(SUM(v.amount), 0) FROM velocity_decisions d
	JOIN velocity_decisions v ON v.%[1]s = d.%[1]s AND v.minute = d.minute AND v.id < d.id
	JOIN reservations r ON r.reservation_key = v.reservation_key AND r.state IN ('held', 'settled')
	WHERE d.reservation_key = ? AND d.%[1]s <> ''`

// VelocitySums recomputes the sums of the stored decision of key the way it
// was taken, from the ledger as it is now: the totals of the minutes before
// the decision's, and the decisions of its own minute taken before it. A
// reservation released since no longer counts, so the sums are at most the
// stored ones unless the decision was wrong. A key without a decision sums
// to zero.
func (l *Ledger) VelocitySums(ctx context.Context, key string) (wallet, recipient decimal.Decimal, err error) {
	wallet, recipient, err = windowTotals(ctx, l.db, key, "<")
	if err != nil {
		return wallet, recipient, err
	}
	var ow, or decimal.Decimal
	if err := l.db.QueryRowContext(ctx, fmt.Sprintf(ownMinuteQuery, "wallet_scope"), key).Scan(&ow); err != nil {
		return wallet, recipient, fmt.Errorf("summing the wallet's payments before %s: %w", key, err)
	}
	if err := l.db.QueryRowContext(ctx, fmt.Sprintf(ownMinuteQuery, "recipient_scope"), key).Scan(&or); err != nil {
		return wallet, recipient, fmt.Errorf("summing the recipient's payments before %s: %w", key, err)
	}
	return wallet.Add(ow), recipient.Add(or), nil
}

// releaseVelocity takes the amounts of the decisions of the released
// reservations keys out of their minutes' totals, in the transaction that
// releases them (the batch's). Reservations without a decision (gas
// budgets, sweeps) change nothing. A reservation is released once, so its
// amount is taken out once.
func releaseVelocity(ctx context.Context, tx *sql.Tx, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k)
	}
	args = append(args, args...)
	q := `UPDATE velocity_totals t JOIN (
		SELECT scope, minute, SUM(amount) AS amount FROM (
			SELECT wallet_scope AS scope, minute, amount FROM velocity_decisions WHERE reservation_key IN (` + marks(len(keys)) + `)
			UNION ALL
			SELECT recipient_scope, minute, amount FROM velocity_decisions WHERE recipient_scope <> '' AND reservation_key IN (` + marks(len(keys)) + `)
		) x GROUP BY scope, minute) r ON t.scope = r.scope AND t.minute = r.minute
		SET t.amount = t.amount - r.amount`
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("taking released payments out of the velocity totals: %w", err)
	}
	return nil
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
