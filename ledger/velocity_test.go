package ledger_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/internal/stacktest"
	"payflow/ledger"
)

// velocityEnv funds wallets and reserves payments for velocity decisions.
type velocityEnv struct {
	t *testing.T
	l *ledger.Ledger
}

func newVelocityEnv(t *testing.T) *velocityEnv {
	l, _ := newLedger(t)
	return &velocityEnv{t: t, l: l}
}

// pay reserves amount of USDT on from for to under a new key (crediting
// from first) and returns the key.
func (e *velocityEnv) pay(from, to, amount string) string {
	e.t.Helper()
	_, err := e.l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: from, Symbol: usdt, Amount: d(amount),
		TxHash: stacktest.RandomID("0xcredit"), Reference: "test"})
	require.NoError(e.t, err)
	key := stacktest.RandomID("withdraw-")
	_, err = e.l.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: chainETH, Address: from, Symbol: usdt, Amount: d(amount),
		WorkflowID: key, Recipient: to})
	require.NoError(e.t, err)
	return key
}

func (e *velocityEnv) decide(key string, limits ledger.VelocityLimits) ledger.VelocityDecision {
	e.t.Helper()
	dec, err := e.l.DecideVelocity(ctx, key, limits)
	require.NoError(e.t, err)
	return dec
}

// recomputedSums is the check payflow-signer makes of key's decision: its
// sums recomputed from the ledger as it is now.
func recomputedSums(t *testing.T, l *ledger.Ledger, key string) (wallet, recipient decimal.Decimal) {
	t.Helper()
	_, c, err := l.GetPayoutCheck(ctx, key)
	require.NoError(t, err)
	require.True(t, c.Decided)
	return c.WalletSum, c.RecipientSum
}

func walletLimit(s string) ledger.VelocityLimits    { return ledger.VelocityLimits{Wallet: d(s)} }
func recipientLimit(s string) ledger.VelocityLimits { return ledger.VelocityLimits{Recipient: d(s)} }

func requireDec(t *testing.T, want string, got decimal.Decimal) {
	t.Helper()
	require.True(t, d(want).Equal(got), "got %s, want %s", got, want)
}

func TestVelocityDecisionSumsTheWalletAndTheRecipient(t *testing.T) {
	e := newVelocityEnv(t)
	from, to, other := stacktest.RandomAddress(), stacktest.RandomAddress(), stacktest.RandomAddress()
	limits := ledger.VelocityLimits{Wallet: d("100"), Recipient: d("80")}

	first := e.decide(e.pay(from, to, "30"), limits)
	require.False(t, first.Over())
	require.False(t, first.Replayed)
	requireDec(t, "0", first.WalletSum)
	requireDec(t, "0", first.RecipientSum)

	// Same recipient from another wallet: 30 + 55 > 80.
	second := e.decide(e.pay(other, to, "55"), limits)
	require.True(t, second.OverRecipient)
	require.False(t, second.OverWallet)
	requireDec(t, "30", second.RecipientSum)
	requireDec(t, "0", second.WalletSum)

	// Same wallet to another recipient: 30 + 70 = 100 is within.
	third := e.decide(e.pay(from, other, "70"), limits)
	require.False(t, third.Over())
	requireDec(t, "30", third.WalletSum)
	// And one more unit is over the wallet's limit.
	fourth := e.decide(e.pay(from, stacktest.RandomAddress(), "1"), limits)
	require.True(t, fourth.OverWallet)
	requireDec(t, "100", fourth.WalletSum)
	requireDec(t, "100", fourth.WalletLimit)
	requireDec(t, "80", fourth.RecipientLimit)
}

// TestVelocityReplayReturnsTheStoredVerdict: a decision is taken once;
// a replay (a retry, a reset) finds it, whatever the limits say now.
func TestVelocityReplayReturnsTheStoredVerdict(t *testing.T) {
	e := newVelocityEnv(t)
	key := e.pay(stacktest.RandomAddress(), stacktest.RandomAddress(), "20")
	first := e.decide(key, walletLimit("10"))
	require.True(t, first.OverWallet)
	again := e.decide(key, walletLimit("1000"))
	require.True(t, again.Replayed)
	require.True(t, again.OverWallet, "the stored verdict stands")
	requireDec(t, "10", again.WalletLimit)
	stored, ok, err := e.l.VelocityDecisionOf(ctx, key)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, first.DecidedAt, stored.DecidedAt)

	_, ok, err = e.l.VelocityDecisionOf(ctx, "withdraw-none")
	require.NoError(t, err)
	require.False(t, ok)
	_, err = e.l.DecideVelocity(ctx, "withdraw-none", walletLimit("10"))
	require.ErrorIs(t, err, ledger.ErrReservationNotFound)
}

// TestVelocityReleasedPaymentsFreeTheirHeadroom: only held and settled
// reservations count; a released one moved nothing.
func TestVelocityReleasedPaymentsFreeTheirHeadroom(t *testing.T) {
	e := newVelocityEnv(t)
	from := stacktest.RandomAddress()
	limits := walletLimit("50")
	settled := e.pay(from, stacktest.RandomAddress(), "20")
	require.False(t, e.decide(settled, limits).Over())
	_, err := e.l.Settle(ctx, settled, "0xsettled")
	require.NoError(t, err)
	released := e.pay(from, stacktest.RandomAddress(), "30")
	require.False(t, e.decide(released, limits).Over())

	over := e.pay(from, stacktest.RandomAddress(), "10")
	dec := e.decide(over, limits)
	require.True(t, dec.OverWallet, "20 settled + 30 held + 10 > 50")
	requireDec(t, "50", dec.WalletSum)

	_, err = e.l.Release(ctx, released)
	require.NoError(t, err)
	fits := e.decide(e.pay(from, stacktest.RandomAddress(), "10"), limits)
	require.False(t, fits.Over(), "the released 30 no longer counts")
	// 20 settled + 10 held (the payment over the limit still holds its money).
	requireDec(t, "30", fits.WalletSum)

	// A recomputation sees the release too: at most the stored sums.
	w, _ := recomputedSums(t, e.l, over)
	requireDec(t, "20", w)

	_, err = e.l.DecideVelocity(ctx, released, limits)
	require.NoError(t, err, "a decided reservation replays even once closed")
	closed := e.pay(from, stacktest.RandomAddress(), "1")
	_, err = e.l.Release(ctx, closed)
	require.NoError(t, err)
	_, err = e.l.DecideVelocity(ctx, closed, limits)
	require.ErrorIs(t, err, ledger.ErrReservationClosed)
}

// TestVelocityWindowIs24Hours: a decision older than 24 h no longer counts.
func TestVelocityWindowIs24Hours(t *testing.T) {
	l, db := newLedger(t)
	e := &velocityEnv{t: t, l: l}
	from := stacktest.RandomAddress()
	limits := walletLimit("50")
	// ago moves the wallet's decisions of the last hour, and their
	// minutes' totals, back by hours.
	ago := func(hours int) {
		t.Helper()
		_, err := db.Exec(`UPDATE velocity_decisions SET decided_at = decided_at - INTERVAL ? HOUR, minute = minute - INTERVAL ? HOUR
			WHERE wallet = ? AND decided_at > UTC_TIMESTAMP() - INTERVAL 1 HOUR`, hours, hours, from)
		require.NoError(t, err)
		_, err = db.Exec(`UPDATE velocity_totals SET minute = minute - INTERVAL ? HOUR
			WHERE scope = ? AND minute > UTC_TIMESTAMP() - INTERVAL 1 HOUR`, hours, "w|"+chainETH+"|"+usdt+"|"+from)
		require.NoError(t, err)
	}
	e.decide(e.pay(from, stacktest.RandomAddress(), "40"), limits)
	ago(25)
	e.decide(e.pay(from, stacktest.RandomAddress(), "5"), limits)
	ago(23)

	dec := e.decide(e.pay(from, stacktest.RandomAddress(), "45"), limits)
	require.False(t, dec.Over(), "40 left the window; 5 + 45 = 50 fits")
	requireDec(t, "5", dec.WalletSum)
	last := e.pay(from, stacktest.RandomAddress(), "0.000001")
	dec = e.decide(last, limits)
	require.True(t, dec.OverWallet)
	requireDec(t, "50", dec.WalletSum)
	w, _ := recomputedSums(t, l, last)
	requireDec(t, "50", w)
}

// TestVelocityRacesForTheLastHeadroom: decisions of one wallet (or one
// recipient) that race are decided one after the other: exactly as many
// fit as the headroom holds.
func TestVelocityRacesForTheLastHeadroom(t *testing.T) {
	for _, tc := range []struct {
		name      string
		racers    int
		headroom  string // the limit; every payment is 10
		fit       int
		byWallet  bool
		precommit string // decided before the race ("" none)
	}{
		{name: "two for one wallet's last 10", racers: 2, headroom: "100", precommit: "90", fit: 1, byWallet: true},
		{name: "eight for one wallet's last 25", racers: 8, headroom: "25", fit: 2, byWallet: true},
		{name: "two for one recipient's last 10", racers: 2, headroom: "60", precommit: "50", fit: 1},
		{name: "eight for one recipient's last 35", racers: 8, headroom: "35", fit: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newVelocityEnv(t)
			from, to := stacktest.RandomAddress(), stacktest.RandomAddress()
			limits := recipientLimit(tc.headroom)
			if tc.byWallet {
				limits = walletLimit(tc.headroom)
			}
			// The racers share the wallet (or the recipient) and nothing else.
			payer := func() string {
				if tc.byWallet {
					return from
				}
				return stacktest.RandomAddress()
			}
			payee := func() string {
				if tc.byWallet {
					return stacktest.RandomAddress()
				}
				return to
			}
			if tc.precommit != "" {
				require.False(t, e.decide(e.pay(payer(), payee(), tc.precommit), limits).Over())
			}
			keys := make([]string, tc.racers)
			for i := range keys {
				keys[i] = e.pay(payer(), payee(), "10")
			}
			var wg sync.WaitGroup
			decs := make([]ledger.VelocityDecision, tc.racers)
			errs := make([]error, tc.racers)
			start := make(chan struct{})
			for i, k := range keys {
				wg.Go(func() {
					<-start
					decs[i], errs[i] = e.l.DecideVelocity(ctx, k, limits)
				})
			}
			close(start)
			wg.Wait()
			fit := 0
			for i, dec := range decs {
				require.NoError(t, errs[i])
				if !dec.Over() {
					fit++
				}
				// Each decision's stored sums are what a recomputation finds.
				w, r := recomputedSums(t, e.l, keys[i])
				requireDec(t, w.String(), dec.WalletSum)
				requireDec(t, r.String(), dec.RecipientSum)
			}
			require.Equal(t, tc.fit, fit, fmt.Sprintf("%d racers for %s", tc.racers, tc.headroom))
		})
	}
}

// TestVelocityDecisionIsReturnedAsStored: the decision a first call returns
// is the one a replay reads back (it is not read back after being taken).
func TestVelocityDecisionIsReturnedAsStored(t *testing.T) {
	e := newVelocityEnv(t)
	to := stacktest.RandomAddress()
	e.decide(e.pay(stacktest.RandomAddress(), to, "7"), ledger.VelocityLimits{Wallet: d("100"), Recipient: d("50.1234567890123456789")})
	key := e.pay(stacktest.RandomAddress(), to, "20")
	first := e.decide(key, ledger.VelocityLimits{Wallet: d("100"), Recipient: d("50.1234567890123456789")})
	stored, ok, err := e.l.VelocityDecisionOf(ctx, key)
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, first.Replayed)
	stored.Replayed = false
	for name, pair := range map[string][2]decimal.Decimal{"amount": {first.Amount, stored.Amount},
		"wallet sum": {first.WalletSum, stored.WalletSum}, "recipient sum": {first.RecipientSum, stored.RecipientSum},
		"wallet limit": {first.WalletLimit, stored.WalletLimit}, "recipient limit": {first.RecipientLimit, stored.RecipientLimit}} {
		require.True(t, pair[0].Equal(pair[1]), "%s: returned %s, stored %s", name, pair[0], pair[1])
	}
	requireDec(t, "7", first.RecipientSum)
	first.Amount, first.WalletSum, first.RecipientSum, first.WalletLimit, first.RecipientLimit = stored.Amount,
		stored.WalletSum, stored.RecipientSum, stored.WalletLimit, stored.RecipientLimit
	require.Equal(t, stored, first)
}

// TestReservationVelocityIsReadWithItsReservation: the signer's one read
// of a reservation carries its decision, as stored, and the recomputed
// sums; a reservation without a decision carries none and sums to zero.
// (A recipient that is a wallet payflow holds the key of: custody/signer's
// TestSweepsAndTopUpsAreNotHeld.)
func TestReservationVelocityIsReadWithItsReservation(t *testing.T) {
	e := newVelocityEnv(t)
	from, to := stacktest.RandomAddress(), stacktest.RandomAddress()
	limits := ledger.VelocityLimits{Wallet: d("100"), Recipient: d("80")}
	e.decide(e.pay(from, to, "30"), limits)
	key := e.pay(from, to, "60")
	dec := e.decide(key, limits)
	require.True(t, dec.OverRecipient)

	r, c, err := e.l.GetPayoutCheck(ctx, key)
	require.NoError(t, err)
	want, err := e.l.GetReservation(ctx, key)
	require.NoError(t, err)
	require.Equal(t, want, r)
	stored, ok, err := e.l.VelocityDecisionOf(ctx, key)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, c.Decided)
	require.False(t, c.RecipientHasKey, "the recipient is no wallet of payflow's")
	require.Equal(t, stored, c.Decision)
	requireDec(t, "30", c.WalletSum)
	requireDec(t, "30", c.RecipientSum)

	undecided := e.pay(from, to, "1")
	r, c, err = e.l.GetPayoutCheck(ctx, undecided)
	require.NoError(t, err)
	require.Equal(t, "held", r.State)
	require.False(t, c.Decided)
	requireDec(t, "0", c.WalletSum)
	requireDec(t, "0", c.RecipientSum)

	_, _, err = e.l.GetPayoutCheck(ctx, "withdraw-none")
	require.ErrorIs(t, err, ledger.ErrReservationNotFound)
}

// TestVelocityOfAReservationJustMade: a caller that has just reserved
// decides without a read first; the decision is the one DecideVelocity
// takes, a reservation that is not what the caller says is refused, and a
// second call returns the stored decision.
func TestVelocityOfAReservationJustMade(t *testing.T) {
	e := newVelocityEnv(t)
	from, to := stacktest.RandomAddress(), stacktest.RandomAddress()
	limits := walletLimit("50")
	e.decide(e.pay(from, to, "30"), limits)
	key := e.pay(from, to, "30")
	made := ledger.Reservation{QueueID: key, Chain: chainETH, Address: strings.ToUpper(from[:2]) + from[2:], Symbol: usdt,
		State: "held", Amount: d("30"), Recipient: to}

	wrong := made
	wrong.Amount = d("3")
	_, err := e.l.DecideVelocityOf(ctx, wrong, limits)
	require.ErrorIs(t, err, ledger.ErrReservationMismatch)
	wrong = made
	wrong.Recipient = stacktest.RandomAddress()
	_, err = e.l.DecideVelocityOf(ctx, wrong, limits)
	require.ErrorIs(t, err, ledger.ErrReservationMismatch)
	_, ok, err := e.l.VelocityDecisionOf(ctx, key)
	require.NoError(t, err)
	require.False(t, ok, "a refused decision stores nothing")

	dec, err := e.l.DecideVelocityOf(ctx, made, limits)
	require.NoError(t, err)
	require.False(t, dec.Replayed)
	require.True(t, dec.OverWallet, "30 + 30 > 50")
	requireDec(t, "30", dec.WalletSum)
	again, err := e.l.DecideVelocityOf(ctx, made, walletLimit("1000"))
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.True(t, again.OverWallet, "the stored verdict stands")

	_, err = e.l.DecideVelocityOf(ctx, ledger.Reservation{QueueID: "withdraw-none", Chain: chainETH, Address: from, Symbol: usdt,
		Amount: d("1")}, limits)
	require.ErrorIs(t, err, ledger.ErrReservationNotFound)
}
