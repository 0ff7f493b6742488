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
	"strings"
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
	r, d, ok, err := l.reservationDecision(ctx, key)
	if err != nil || ok {
		return d, err
	}
	return l.decide(ctx, r, limits)
}

// decide takes r's decision, retrying after a deadlock, or returns the one
// stored concurrently.
func (l *Ledger) decide(ctx context.Context, r Reservation, limits VelocityLimits) (VelocityDecision, error) {
	key := r.QueueID
	var d VelocityDecision
	var err error
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

// DecideVelocityOf decides the velocity of r, a reservation the caller
// has just made (a new one, not a replay), as DecideVelocity does but
// without reading it first: the deciding transaction checks that the
// stored reservation is r (else ErrReservationMismatch), and a decision
// stored meanwhile is returned, Replayed.
func (l *Ledger) DecideVelocityOf(ctx context.Context, r Reservation, limits VelocityLimits) (VelocityDecision, error) {
	r.Address, r.Recipient = norm(r.Address), norm(r.Recipient)
	return l.decide(ctx, r, limits)
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
	// One statement takes the locks row by row in the order given.
	args := make([]any, len(scopes))
	for i, s := range scopes {
		args[i] = s
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO velocity_locks (scope, decisions) VALUES "+
		strings.TrimSuffix(strings.Repeat("(?, 1),", len(scopes)), ",")+
		" ON DUPLICATE KEY UPDATE decisions = decisions + 1", args...); err != nil {
		return none, false, fmt.Errorf("locking %s: %w", strings.Join(scopes, ", "), err)
	}
	// The reservation's state is held until the commit (a release waits
	// for the decision, and then takes its amount out of the totals); under
	// the locks, a decision taken concurrently is committed and seen.
	var stored Reservation
	var decided bool
	err = tx.QueryRowContext(ctx, "SELECT chain, address, symbol, amount, state, COALESCE(recipient, ''), "+
		"EXISTS (SELECT 1 FROM velocity_decisions WHERE reservation_key = ?) "+
		"FROM reservations WHERE reservation_key = ? LOCK IN SHARE MODE", r.QueueID, r.QueueID).
		Scan(&stored.Chain, &stored.Address, &stored.Symbol, &stored.Amount, &stored.State, &stored.Recipient, &decided)
	if errors.Is(err, sql.ErrNoRows) {
		return none, false, fmt.Errorf("reservation %s: %w", r.QueueID, ErrReservationNotFound)
	}
	if err != nil {
		return none, false, fmt.Errorf("reading reservation %s: %w", r.QueueID, err)
	}
	if decided {
		return none, false, nil // decided concurrently: that decision stands
	}
	if stored.Chain != r.Chain || stored.Address != r.Address || stored.Symbol != r.Symbol || !stored.Amount.Equal(r.Amount) ||
		stored.Recipient != r.Recipient {
		return none, false, fmt.Errorf("reservation %s holds %s %s on %s from %s for %q, not %s %s on %s from %s for %q: %w",
			r.QueueID, stored.Amount, stored.Symbol, stored.Chain, stored.Address, stored.Recipient,
			r.Amount, r.Symbol, r.Chain, r.Address, r.Recipient, ErrReservationMismatch)
	}
	state := stored.State
	if state != "held" {
		return none, false, fmt.Errorf("the reservation of %s is %s: %w", r.QueueID, state, ErrReservationClosed)
	}
	// The decision is stored with its sums, read in the same statement:
	// under the locks, every decision before this one is in the totals,
	// its own minute's too. RETURNING gives them as stored, so a replay
	// reads the same.
	var decidedAt time.Time
	var wsum, rsum decimal.Decimal
	if err := tx.QueryRowContext(ctx, `INSERT INTO velocity_decisions (reservation_key, chain, symbol, wallet, recipient,
		wallet_scope, recipient_scope, amount, wallet_limit, recipient_limit, decided_at, minute, wallet_sum, recipient_sum)
		SELECT ?,?,?,?,?,?,?,?,?,?, x.now, x.minute, `+windowSum("?", "x.minute", "<=")+`, `+windowSum("?", "x.minute", "<=")+`
		FROM (SELECT UTC_TIMESTAMP(6) AS now, CAST(DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:00') AS DATETIME) AS minute) x
		RETURNING decided_at, wallet_sum, recipient_sum`,
		r.QueueID, r.Chain, r.Symbol, norm(r.Address), norm(r.Recipient), ws, rs, r.Amount,
		limitValue(limits.Wallet), limitValue(limits.Recipient), ws, ws, rs, rs).Scan(&decidedAt, &wsum, &rsum); err != nil {
		return none, false, err
	}
	ow, or := VelocityOver(wsum, rsum, r.Amount, rs, limits)
	if _, err := tx.ExecContext(ctx, `UPDATE velocity_decisions SET wallet_sum=?, recipient_sum=?, over_wallet=?, over_recipient=?
		WHERE reservation_key=?`, wsum, rsum, ow, or, r.QueueID); err != nil {
		return none, false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO velocity_totals (scope, minute, amount)
		SELECT wallet_scope, minute, amount FROM velocity_decisions WHERE reservation_key = ?
		UNION ALL
		SELECT recipient_scope, minute, amount FROM velocity_decisions WHERE reservation_key = ? AND recipient_scope <> ''
		ON DUPLICATE KEY UPDATE amount = velocity_totals.amount + VALUES(amount)`, r.QueueID, r.QueueID); err != nil {
		return none, false, fmt.Errorf("adding %s to the totals of %s: %w", r.QueueID, strings.Join(scopes, ", "), err)
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

// windowSum sums the per-minute totals of scope (a column or "?", then
// given twice) over the minutes from 24 h before minute to minute (upTo
// "<=") or to the minute before it ("<"); zero for scope "" (no
// recipient) or NULL (no decision).
func windowSum(scope, minute, upTo string) string {
	return fmt.Sprintf(`(SELECT COALESCE(SUM(t.amount), 0) FROM velocity_totals t
		WHERE %[1]s <> '' AND t.scope = %[1]s AND t.minute >= %[2]s - INTERVAL 24 HOUR AND t.minute %[3]s %[2]s)`, scope, minute, upTo)
}

// ownMinuteSum sums the decisions of decision d's own minute taken before
// it (lower id: under the locks, decided earlier) whose reservations are
// held or settled; zero without a decision or a scope.
func ownMinuteSum(scope string) string {
	return fmt.Sprintf(`(SELECT COALESCE(SUM(v.amount), 0) FROM velocity_decisions v
		JOIN reservations vr ON vr.reservation_key = v.reservation_key AND vr.state IN ('held', 'settled')
		WHERE d.%[1]s <> '' AND v.%[1]s = d.%[1]s AND v.minute = d.minute AND v.id < d.id)`, scope)
}

// The columns of a reservation (r) and of its decision (d, NULL when it
// has none) that reservationDecision and GetPayoutCheck read.
const (
	reservationColumns = `r.chain, r.address, r.symbol, r.amount, r.state, COALESCE(r.recipient, '')`
	decisionColumns    = `d.chain, d.symbol, d.wallet, d.recipient, d.amount, d.wallet_sum, d.recipient_sum,
		d.wallet_limit, d.recipient_limit, d.over_wallet, d.over_recipient, d.decided_at`
	reservationDecisionFrom = ` FROM reservations r LEFT JOIN velocity_decisions d ON d.reservation_key = r.reservation_key
		WHERE r.reservation_key = ?`
)

var (
	// recomputedSumsColumns: a stored decision's sums recomputed from the
	// ledger as it is now (PayoutCheck).
	recomputedSumsColumns = windowSum("d.wallet_scope", "d.minute", "<") + ` + ` + ownMinuteSum("wallet_scope") + `, ` +
		windowSum("d.recipient_scope", "d.minute", "<") + ` + ` + ownMinuteSum("recipient_scope")
)

// nullDecision scans decisionColumns, all NULL when the reservation has no
// decision.
type nullDecision struct {
	chain, symbol, wallet, recipient                             sql.NullString
	amount, walletSum, recipientSum, walletLimit, recipientLimit decimal.NullDecimal
	overWallet, overRecipient                                    sql.NullBool
	decidedAt                                                    sql.NullTime
}

func (n *nullDecision) dest() []any {
	return []any{&n.chain, &n.symbol, &n.wallet, &n.recipient, &n.amount, &n.walletSum, &n.recipientSum,
		&n.walletLimit, &n.recipientLimit, &n.overWallet, &n.overRecipient, &n.decidedAt}
}

// decision is the stored decision of key, Replayed (ok false: none).
func (n *nullDecision) decision(key string) (VelocityDecision, bool) {
	if !n.chain.Valid {
		return VelocityDecision{}, false
	}
	return VelocityDecision{ReservationKey: key, Chain: n.chain.String, Symbol: n.symbol.String, Wallet: n.wallet.String,
		Recipient: n.recipient.String, Amount: n.amount.Decimal, WalletSum: n.walletSum.Decimal, RecipientSum: n.recipientSum.Decimal,
		WalletLimit: n.walletLimit.Decimal, RecipientLimit: n.recipientLimit.Decimal, OverWallet: n.overWallet.Bool,
		OverRecipient: n.overRecipient.Bool, DecidedAt: n.decidedAt.Time, Replayed: true}, true
}

// reservationDecision reads reservation key and its stored decision (ok
// false: none) in one statement: what DecideVelocity needs before deciding.
func (l *Ledger) reservationDecision(ctx context.Context, key string) (Reservation, VelocityDecision, bool, error) {
	r := Reservation{QueueID: key}
	var n nullDecision
	err := l.db.QueryRowContext(ctx, `SELECT `+reservationColumns+`, `+decisionColumns+reservationDecisionFrom, key).
		Scan(append([]any{&r.Chain, &r.Address, &r.Symbol, &r.Amount, &r.State, &r.Recipient}, n.dest()...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return Reservation{}, VelocityDecision{}, false, ErrReservationNotFound
	}
	if err != nil {
		return Reservation{}, VelocityDecision{}, false, fmt.Errorf("reading reservation %s and its velocity decision: %w", key, err)
	}
	d, ok := n.decision(key)
	return r, d, ok, nil
}

// PayoutCheck is what payflow-signer checks of a reservation before it
// signs its payout, beside the reservation itself: whether its recipient is
// a wallet payflow holds the key of (the money stays in custody), the
// stored velocity decision, if any, and the decision's sums recomputed the
// way it was taken, from the ledger as it is now: the totals of the minutes
// before the decision's, and the decisions of its own minute taken before
// it. A reservation released since no longer counts, so the sums are at
// most the stored ones unless the decision was wrong. Without a decision
// they are zero.
type PayoutCheck struct {
	RecipientHasKey         bool
	Decision                VelocityDecision
	Decided                 bool
	WalletSum, RecipientSum decimal.Decimal
}

// recipientKeyHolder is who holds the key of the reservation's (r)
// recipient when it is a wallet payflow knows (NULL: it is not).
const recipientKeyHolder = `(SELECT w.key_holder FROM wallets w WHERE w.chain = r.chain AND w.address = r.recipient)`

// GetPayoutCheck reads reservation key as GetReservation does, with its
// PayoutCheck, in one statement. A reservation that does not exist is
// ErrReservationNotFound.
func (l *Ledger) GetPayoutCheck(ctx context.Context, key string) (Reservation, PayoutCheck, error) {
	r := Reservation{QueueID: key}
	var n nullDecision
	var c PayoutCheck
	var holder sql.NullString
	dest := append([]any{&r.Chain, &r.Address, &r.Symbol, &r.Amount, &r.State, &r.Recipient}, n.dest()...)
	err := l.db.QueryRowContext(ctx, `SELECT `+reservationColumns+`, `+decisionColumns+`, `+recomputedSumsColumns+`, `+
		recipientKeyHolder+reservationDecisionFrom, key).Scan(append(dest, &c.WalletSum, &c.RecipientSum, &holder)...)
	if errors.Is(err, sql.ErrNoRows) {
		return Reservation{}, PayoutCheck{}, ErrReservationNotFound
	}
	if err != nil {
		return Reservation{}, PayoutCheck{}, fmt.Errorf("reading reservation %s and its velocity decision: %w", key, err)
	}
	c.RecipientHasKey = holder.Valid && holder.String != KeyNone
	c.Decision, c.Decided = n.decision(key)
	return r, c, nil
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
	var n nullDecision
	err := l.db.QueryRowContext(ctx, `SELECT `+decisionColumns+` FROM velocity_decisions d WHERE d.reservation_key = ?`, key).Scan(n.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return VelocityDecision{}, false, nil
	}
	if err != nil {
		return VelocityDecision{}, false, fmt.Errorf("reading the velocity decision of %s: %w", key, err)
	}
	d, ok := n.decision(key)
	return d, ok, nil
}
