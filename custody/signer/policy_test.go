package signer_test

import (
	"context"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/audit"
	"payflow/config"
	"payflow/custody/signer"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// policyEnv is env with a signer whose USDT waits for approval above 100
// and has a 24 h limit of 1,000 per wallet and 600 per recipient.
type policyEnv struct {
	*env
	sig    *signer.Signer
	trail  *audit.Log
	limits ledger.VelocityLimits
	cold   string // the chain's cold address
}

func newPolicyEnv(t *testing.T) *policyEnv {
	e := newEnv(t)
	chains := e.chains()
	ch := chains[chainName]
	usdt := ch.Tokens["USDT"]
	usdt.ApprovalThreshold, usdt.VelocityWallet24h, usdt.VelocityRecipient24h = "100", "1000", "600"
	ch.Tokens = map[string]config.Token{"USDT": usdt}
	ch.ColdAddress = stacktest.RandomAddress()
	chains[chainName] = ch
	sig := e.newSigner(func(c *signer.Config) { c.Chains = chains })
	return &policyEnv{env: e, sig: sig, trail: audit.New(e.db),
		limits: ledger.VelocityLimits{Wallet: d("1000"), Recipient: d("600")}, cold: ch.ColdAddress}
}

// pay reserves amount of USDT from from to to and decides its velocity with
// limits; it returns the reservation (the payment's workflow id).
func (e *policyEnv) pay(from, to, amount string, limits ledger.VelocityLimits) string {
	e.t.Helper()
	res := e.reserve(from, "USDT", amount, to)
	_, err := e.led.DecideVelocity(context.Background(), res, limits)
	require.NoError(e.t, err)
	return res
}

func (e *policyEnv) sign(res, from, to, amount string) (signerapi.SignResponse, error) {
	return e.sig.Sign(context.Background(), request(res, "transfer", 0, res, from, e.tokenTx(0, to, amount)))
}

// approve records the approval the payment's workflow records.
func (e *policyEnv) approve(res string) {
	e.t.Helper()
	_, err := e.trail.Record(context.Background(), audit.Entry{Actor: "alice", Source: audit.SourceTemporal, Action: audit.ActionApprove,
		Subject: res, Payment: res, Reason: "known customer", Key: res + "/approval"})
	require.NoError(e.t, err)
}

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// TestHeldPaymentsNeedARecordedApproval: a payment above the approval
// threshold, or over a velocity limit, is refused until its workflow has
// recorded an approval; then the same attempt is signed.
func TestHeldPaymentsNeedARecordedApproval(t *testing.T) {
	e := newPolicyEnv(t)
	from := e.newKey(signerapi.BackendEnvelope)

	to := stacktest.RandomAddress()
	above := e.pay(from, to, "150", e.limits)
	_, err := e.sign(above, from, to, "150")
	e.requireRefused(err, above, "not_approved", "150 USDT is above the approval threshold 100")
	// payflowctl's record of the command is not the workflow's receipt.
	_, err = e.trail.Record(context.Background(), audit.Entry{Actor: "alice", Source: audit.SourceCLI, Action: audit.ActionApprove,
		Subject: above, Payment: above, Reason: "ok"})
	require.NoError(t, err)
	_, err = e.sign(above, from, to, "150")
	e.requireRefused(err, above, "not_approved", "no approval of payment "+above+" is recorded")
	e.approve(above)
	_, err = e.sign(above, from, to, "150")
	require.NoError(t, err)

	// Over the wallet's limit: 150 + 8×100 = 950 before it, 950 + 90 > 1000.
	for range 8 {
		r := stacktest.RandomAddress()
		res := e.pay(from, r, "100", e.limits)
		_, err := e.sign(res, from, r, "100")
		require.NoError(t, err, "at the threshold, within the limits")
	}
	to = stacktest.RandomAddress()
	over := e.pay(from, to, "90", e.limits)
	_, err = e.sign(over, from, to, "90")
	e.requireRefused(err, over, "not_approved", "its wallet is over its 24 h velocity limit")
	e.approve(over)
	_, err = e.sign(over, from, to, "90")
	require.NoError(t, err)
	// An approval is the payment's own: another's does not count.
	to = stacktest.RandomAddress()
	next := e.pay(from, to, "1", e.limits)
	_, err = e.sign(next, from, to, "1")
	e.requireRefused(err, next, "not_approved", "its wallet is over its 24 h velocity limit")
}

// TestPaymentWithoutAVelocityDecisionIsRefused: with limits configured, a
// worker that skipped the decision gets no signature.
func TestPaymentWithoutAVelocityDecisionIsRefused(t *testing.T) {
	e := newPolicyEnv(t)
	from := e.newKey(signerapi.BackendEnvelope)
	to := stacktest.RandomAddress()
	res := e.reserve(from, "USDT", "5", to)
	_, err := e.sign(res, from, to, "5")
	e.requireRefused(err, res, "no_velocity_decision", "has no velocity decision, and USDT on ETH has velocity limits")
	// Decided (within the limits), it is signed.
	_, err = e.led.DecideVelocity(context.Background(), res, e.limits)
	require.NoError(t, err)
	_, err = e.sign(res, from, to, "5")
	require.NoError(t, err)
}

// TestWrongVelocityDecisionIsRefused: a decision taken against no limits
// (or wrong ones) that says a payment fits, when the signer's recomputed
// sums say it is over, is refused even with nothing else held.
func TestWrongVelocityDecisionIsRefused(t *testing.T) {
	e := newPolicyEnv(t)
	from := e.newKey(signerapi.BackendEnvelope)
	to := stacktest.RandomAddress()
	for range 6 {
		res := e.pay(stacktest.RandomAddress(), to, "100", ledger.VelocityLimits{})
		_, err := e.led.Settle(context.Background(), res, "0xpaid")
		require.NoError(t, err)
	}
	res := e.pay(from, to, "50", ledger.VelocityLimits{}) // a worker without limits: "fits"
	_, err := e.sign(res, from, to, "50")
	e.requireRefused(err, res, "velocity_mismatch", "received 600 USDT in the 24 h before it, and 50 more is above its limit 600")
}

// TestSweepsAndTopUpsAreNotHeld: a transfer to a wallet payflow holds the
// key of (a sweep to the collection wallet, a gas top-up to a deposit
// wallet), or to the chain's cold address (a treasury sweep), needs neither
// a decision nor an approval, whatever its amount.
func TestSweepsAndTopUpsAreNotHeld(t *testing.T) {
	e := newPolicyEnv(t)
	from := e.newKey(signerapi.BackendEnvelope)
	collection := e.newKey(signerapi.BackendKMS)
	_, err := e.db.Exec("INSERT INTO wallets (chain, address, kind, label, key_holder) VALUES (?,?,?,?,?)",
		chainName, collection, "collection", "collection", ledger.KeySigner)
	require.NoError(t, err)
	res := e.reserve(from, "USDT", "5000", collection)
	got, err := e.sig.Sign(context.Background(), request(res, "sweep", 0, res, from, e.tokenTx(0, collection, "5000")))
	require.NoError(t, err)
	require.NotEmpty(t, got.Raw)

	// The chain's cold address: a treasury sweep, no key held.
	res = e.reserve(from, "USDT", "7000", e.cold)
	_, err = e.sig.Sign(context.Background(), request(res, "sweep", 0, res, from, e.tokenTx(1, e.cold, "7000")))
	require.NoError(t, err)
	// The same amount to any other address is a payment: held.
	other := stacktest.RandomAddress()
	res = e.pay(from, other, "7000", e.limits)
	_, err = e.sig.Sign(context.Background(), request(res, "transfer", 0, res, from, e.tokenTx(2, other, "7000")))
	e.requireRefused(err, res, "not_approved", "7000 USDT is above the approval threshold 100")
}
