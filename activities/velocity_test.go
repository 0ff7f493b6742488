package activities_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	enums "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"payflow/activities"
	"payflow/audit"
	"payflow/config"
	"payflow/internal/metrics"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
)

// TestBeginPaymentDecidesVelocityOnce: BeginPayment reserves, then decides
// the payment's velocity once: a payment over its wallet's limit comes back
// with the verdict (sums in the asset's units), a replay keeps it, and the
// reasons to wait are counted once.
func TestBeginPaymentDecidesVelocityOnce(t *testing.T) {
	ctx := context.Background()
	db := stacktest.TestDB(t, "actvelocity")
	require.NoError(t, ledger.Migrate(ctx, db))
	led := ledger.New(db)
	from := stacktest.RandomAddress()
	_, err := db.Exec("INSERT INTO wallets (chain, address, kind, label, key_holder) VALUES ('ETH', ?, 'hot', 'velocity test', 'signer')", from)
	require.NoError(t, err)
	_, err = led.Credit(ctx, ledger.CreditInput{Chain: "ETH", Address: from, Symbol: "USDT", Amount: decimal.NewFromInt(1000),
		TxHash: stacktest.RandomID("0x"), Reference: "test"})
	require.NoError(t, err)
	m := metrics.New()
	acts := &activities.Activities{Chain: "ETH", DB: db, Ledger: led, Wallets: ledger.NewWallets(db, nil), Metrics: m,
		Assets: config.ChainConfig{Native: config.NativeCoin{Symbol: "ETH"}, Tokens: map[string]config.Token{"USDT": {
			Address: stacktest.RandomAddress(), Decimals: 6, ApprovalThreshold: "50", VelocityWallet24h: "60"}}}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	to := stacktest.RandomAddress()
	begin := func(key, amount string) activities.BeginResult {
		t.Helper()
		v, err := env.ExecuteActivity(acts.BeginPayment, activities.BeginInput{AnswerID: key + "/result", ApprovalThreshold: "50",
			ReserveInput: activities.ReserveInput{Key: key, Chain: "ETH", Symbol: "USDT", FromAddress: from,
				Amount: protocol.MustAmount(amount), ToAddress: to}})
		require.NoError(t, err)
		var res activities.BeginResult
		require.NoError(t, v.Get(&res))
		return res
	}
	held := func(reason string) float64 {
		return count(t, m, "payflow_payments_held_total", "chain=ETH,reason="+reason)
	}

	first := stacktest.RandomID("withdraw-")
	require.Nil(t, begin(first, "40").Velocity, "40 of 60 fits")
	require.Nil(t, begin(first, "40").Velocity)
	require.Zero(t, held(metrics.HeldThreshold)+held(metrics.HeldVelocityWallet))

	second := stacktest.RandomID("withdraw-")
	for range 2 {
		v := begin(second, "55").Velocity
		require.NotNil(t, v)
		require.Equal(t, activities.Velocity{Wallet: from, Recipient: to, OverWallet: true, WalletTotal: "95",
			WalletLimit: "60", RecipientTotal: "95"}, *v)
	}
	require.Equal(t, 1.0, held(metrics.HeldThreshold), "55 is above the threshold 50, counted once")
	require.Equal(t, 1.0, held(metrics.HeldVelocityWallet))
	require.Zero(t, held(metrics.HeldVelocityRecipient))
}

// history is a workflow history of the given events.
type history struct{ events []*historypb.HistoryEvent }

func (h history) GetWorkflowHistory(context.Context, string, string, bool, enums.HistoryEventFilterType) client.HistoryEventIterator {
	return &eventIterator{events: h.events}
}

type eventIterator struct{ events []*historypb.HistoryEvent }

func (it *eventIterator) HasNext() bool { return len(it.events) > 0 }

func (it *eventIterator) Next() (*historypb.HistoryEvent, error) {
	ev := it.events[0]
	it.events = it.events[1:]
	return ev, nil
}

func signaled(t *testing.T, id int64, name, identity string, payload any) *historypb.HistoryEvent {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayloads(payload)
	require.NoError(t, err)
	return &historypb.HistoryEvent{EventId: id, EventType: enums.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{
			WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{
				SignalName: name, Identity: identity, Input: p}}}
}

// TestRecordApprovalNamesTheSignalsSender: the record's actor is the
// identity Temporal gave the sender of the approval signal that carried the
// decision (not another signal's), else the payload's By; a repeat records
// nothing new.
func TestRecordApprovalNamesTheSignalsSender(t *testing.T) {
	ctx := context.Background()
	db := stacktest.TestDB(t, "actapproval")
	require.NoError(t, ledger.Migrate(ctx, db))
	trail := audit.New(db)
	dec := activities.Approval{Approve: true, By: "typed-by-hand", Reason: "known customer"}
	acts := &activities.Activities{Audit: trail, History: history{events: []*historypb.HistoryEvent{
		signaled(t, 5, activities.SignalTxEvent, "tracker", map[string]any{"milestone": "seen"}),
		signaled(t, 7, activities.SignalApproval, "mallory@web", activities.Approval{Approve: true, By: "typed-by-hand"}),
		signaled(t, 9, activities.SignalApproval, "alice@web-ui", dec),
	}}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	in := activities.ApprovalInput{WorkflowID: "withdraw-q1", RunID: "run-1", Decision: dec, Held: "over the limit"}
	for range 2 {
		_, err := env.ExecuteActivity(acts.RecordApproval, in)
		require.NoError(t, err)
	}
	got, err := trail.List(ctx, audit.Filter{Payment: "withdraw-q1"})
	require.NoError(t, err)
	require.Len(t, got, 1, "a repeat records nothing new")
	require.Equal(t, "alice@web-ui", got[0].Actor)
	require.Equal(t, audit.SourceTemporal, got[0].Source)
	require.Equal(t, audit.ActionApprove, got[0].Action)
	require.Equal(t, "withdraw-q1", got[0].Subject)
	require.Equal(t, "known customer", got[0].Reason)
	require.Equal(t, "withdraw-q1/run-1/approval/9", got[0].Key)
	var changes map[string]string
	require.NoError(t, json.Unmarshal(got[0].Changes, &changes))
	require.Equal(t, map[string]string{"decision": "approve", "by": "typed-by-hand", "identity": "alice@web-ui",
		"held": "over the limit"}, changes)
	ok, err := trail.Approved(ctx, "withdraw-q1")
	require.NoError(t, err)
	require.True(t, ok)

	// No signal in the history carries the decision: the payload's By.
	rejected := activities.ApprovalInput{WorkflowID: "pay-q2", RunID: "run-2", Decision: activities.Approval{By: "bob"}}
	_, err = env.ExecuteActivity(acts.RecordApproval, rejected)
	require.NoError(t, err)
	got, err = trail.List(ctx, audit.Filter{Payment: "pay-q2"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "bob", got[0].Actor)
	require.Equal(t, audit.ActionReject, got[0].Action)
	require.Equal(t, "no reason given", got[0].Reason)
	require.Equal(t, "pay-q2/run-2/approval", got[0].Key)
}
