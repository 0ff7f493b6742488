package activities_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"payflow/activities"
	"payflow/config"
	"payflow/internal/metrics"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/rmq"
)

// count is the value of the series of name whose labels are exactly labels
// ("k=v,k=v" in name order; 0 when absent): a counter's value, a
// histogram's count.
func count(t *testing.T, m *metrics.Metrics, name string, labels string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			got := ""
			for _, l := range mt.GetLabel() {
				if got != "" {
					got += ","
				}
				got += l.GetName() + "=" + l.GetValue()
			}
			if got != labels {
				continue
			}
			if h := mt.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return mt.GetCounter().GetValue()
		}
	}
	return 0
}

// A payment is counted once, when its answer is first recorded: a retry of
// DecidePayment (or a replay, or an operator's reset) finds the answer and
// counts nothing, with or without a reservation.
func TestDecidePaymentCountsOnce(t *testing.T) {
	ctx := context.Background()
	db := stacktest.TestDB(t, "actmetrics")
	require.NoError(t, ledger.Migrate(ctx, db))
	led := ledger.New(db)
	m := metrics.New()
	q := config.QueueConfig{Queue: "resp", Exchange: "x", Routing: []string{"resp.key"}}
	acts := &activities.Activities{Chain: "ETH", DB: db, Ledger: led, Metrics: m,
		Responses: map[protocol.Flow]config.QueueConfig{protocol.FlowWithdraw: q, protocol.FlowPay: q}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)

	// A refused request: nothing reserved.
	refused := activities.DecideInput{Flow: protocol.FlowPay, AnswerID: "pay-r/result", WorkflowStart: time.Now().Add(-time.Second),
		Answer: protocol.PaymentResponse{QueueID: "r", Status: protocol.StatusFailed, Error: "bad"}}
	for range 3 {
		_, err := env.ExecuteActivity(acts.DecidePayment, refused)
		require.NoError(t, err)
	}
	require.Equal(t, 1.0, count(t, m, "payflow_payments_total", "chain=ETH,flow=pay,status=failed"))
	require.Equal(t, 1.0, count(t, m, "payflow_request_to_answer_seconds", "chain=ETH,flow=pay,status=failed"))

	// A paid withdrawal: the reservation is settled with the answer.
	addr := "0x00000000000000000000000000000000000000a1"
	_, err := led.Credit(ctx, ledger.CreditInput{Chain: "ETH", Address: addr, Symbol: "USDT", Amount: decimal.NewFromInt(10),
		TxHash: "0x" + "11" + "00000000000000000000000000000000000000000000000000000000000000", Reference: "test"})
	require.NoError(t, err)
	_, err = led.Reserve(ctx, ledger.ReserveInput{QueueID: "withdraw-w", Chain: "ETH", Address: addr, Symbol: "USDT",
		Amount: decimal.NewFromInt(4), WorkflowID: "withdraw-w"})
	require.NoError(t, err)
	paid := activities.DecideInput{Flow: protocol.FlowWithdraw, Key: "withdraw-w", AnswerID: "withdraw-w/result",
		WorkflowStart: time.Now().Add(-time.Minute), Answer: protocol.PaymentResponse{QueueID: "w", Status: protocol.StatusSucceeded,
			TxHash: "0x" + "22" + "00000000000000000000000000000000000000000000000000000000000000"}}
	for range 3 {
		_, err := env.ExecuteActivity(acts.DecidePayment, paid)
		require.NoError(t, err)
	}
	require.Equal(t, 1.0, count(t, m, "payflow_payments_total", "chain=ETH,flow=withdraw,status=succeeded"))
	require.Equal(t, 1.0, count(t, m, "payflow_request_to_answer_seconds", "chain=ETH,flow=withdraw,status=succeeded"))
	require.Equal(t, 0.0, count(t, m, "payflow_payments_total", "chain=ETH,flow=withdraw,status=failed"))
}

// A deposit notice is counted once, when its outbox row is first marked
// published; a payment answer published is not a deposit.
func TestPublishResultCountsDepositNoticesOnce(t *testing.T) {
	ctx := context.Background()
	st := stacktest.Load(t)
	db := stacktest.TestDB(t, "actmetrics")
	require.NoError(t, ledger.Migrate(ctx, db))
	p := stacktest.RandomID("actmetrics-")
	topo := config.Default().RMQ
	for _, qc := range []*config.QueueConfig{&topo.Topup, &topo.Withdraw, &topo.Pay, &topo.TopupResp, &topo.WithdrawResp,
		&topo.PayResp, &topo.DeadLetter} {
		*qc = config.QueueConfig{Queue: p + "." + qc.Queue, Exchange: p + ".x", Routing: []string{p + "." + qc.Queue + ".key"}}
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(st.AMQPURL)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			for _, qc := range []config.QueueConfig{topo.Topup, topo.Withdraw, topo.Pay, topo.TopupResp, topo.WithdrawResp,
				topo.PayResp, topo.DeadLetter} {
				_, _ = ch.QueueDelete(qc.Queue, false, false, false)
			}
			_ = ch.ExchangeDelete(p+".x", false, false)
		}
	})
	pub := rmq.NewPublisher(st.AMQPURL, topo, nil)
	t.Cleanup(func() { _ = pub.Close() })
	m := metrics.New()
	acts := &activities.Activities{Chain: "ETH", DB: db, Publisher: pub, Metrics: m,
		Assets:    config.ChainConfig{Tokens: map[string]config.Token{"USDT": {Decimals: 6}}},
		Responses: map[protocol.Flow]config.QueueConfig{protocol.FlowTopup: topo.TopupResp, protocol.FlowPay: topo.PayResp}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)

	notice := func(id string, status int, symbol string) activities.PublishInput {
		return activities.PublishInput{Flow: protocol.FlowTopup, MessageID: id,
			Topup: &protocol.TopupResponse{Status: status, Chain: "ETH", Symbol: symbol}}
	}
	for range 2 {
		for _, in := range []activities.PublishInput{notice("d/seen", protocol.StatusPending, "USDT"),
			notice("d/credited", protocol.StatusSucceeded, "USDT"), notice("e/seen", protocol.StatusPending, "DOGE"),
			{Flow: protocol.FlowPay, MessageID: "pay-q/result", Payment: &protocol.PaymentResponse{QueueID: "q", Status: 1}}} {
			_, err := env.ExecuteActivity(acts.PublishResult, in)
			require.NoError(t, err)
		}
	}
	require.Equal(t, 1.0, count(t, m, "payflow_deposits_total", "chain=ETH,status=seen,symbol=USDT"))
	require.Equal(t, 1.0, count(t, m, "payflow_deposits_total", "chain=ETH,status=credited,symbol=USDT"))
	require.Equal(t, 1.0, count(t, m, "payflow_deposits_total", "chain=ETH,status=seen,symbol=other"), "unknown symbols stay bounded")
	require.Equal(t, 0.0, count(t, m, "payflow_payments_total", "chain=ETH,flow=pay,status=succeeded"),
		"payments count when decided, not when published")
}
