// Package metrics is payflow's Prometheus instrumentation: the
// collectors on one registry, the /metrics handler, the Temporal SDK's
// metrics through its OpenTelemetry contrib (TemporalHandler), and the
// worker's gauges read from MariaDB and the node (Sampler).
//
// Events are counted where they happen exactly once, however often an
// activity is retried: a payment when its answer row is first recorded, a
// deposit notice when its outbox row is first marked published by its run,
// an answer relayed when the answers relay marks it published, a broadcast
// when the transfer's first attempt leaves the 'signed' state. Labels are
// bounded (chain, flow, status, symbol, kind, outcome): never a queue_id, an
// address or a transaction hash.
//
// A nil *Metrics records nothing, so code paths without metrics (tests,
// payflowctl) need no special case.
package metrics

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"payflow/internal/callcount"
	"payflow/protocol"
)

// Label values of payflow_payments_total and payflow_request_to_answer_seconds.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Label values of payflow_deposits_total: the deposit notice's status.
const (
	DepositSeen     = "seen"     // status=2
	DepositCredited = "credited" // status=1
	DepositFailed   = "failed"   // status=0
)

// Label values of payflow_payments_held_total's reason.
const (
	HeldThreshold         = "threshold"
	HeldVelocityWallet    = "velocity_wallet"
	HeldVelocityRecipient = "velocity_recipient"
)

// Label values of payflow_ws_reconnects_total.
const (
	ComponentListener = "listener"
	ComponentTracker  = "tracker"
)

// Label values of payflow_deliveries_total's outcome.
const (
	OutcomeStarted      = "started"       // a workflow was started for the request
	OutcomeDuplicate    = "duplicate"     // the same request again: nothing new started
	OutcomeRefused      = "refused"       // a bad request answered with status=0
	OutcomeDeadLettered = "dead_lettered" // sent to the dead-letter queue
	OutcomeRequeued     = "requeued"      // put back for a retry (an outage or a failure)
)

// latencyBuckets span a dev-chain payment (seconds) to an approval that
// waits a day.
var latencyBuckets = []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400}

// Metrics holds payflow's event collectors on one registry. Create it with
// New; the zero value is not usable, a nil one records nothing.
type Metrics struct {
	reg *prometheus.Registry

	payments           *prometheus.CounterVec
	deposits           *prometheus.CounterVec
	requestToBroadcast *prometheus.HistogramVec
	requestToAnswer    *prometheus.HistogramVec
	wsReconnects       *prometheus.CounterVec
	deliveries         *prometheus.CounterVec
	deadLetters        *prometheus.CounterVec
	shortTransfers     *prometheus.CounterVec
	chainRefused       *prometheus.GaugeVec
	answersRelayed     *prometheus.CounterVec
	held               *prometheus.CounterVec
}

// New returns payflow's collectors registered on a new registry, with the Go
// runtime and process collectors (memory, CPU, file descriptors).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		payments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_payments_total",
			Help: "Withdraw and pay requests decided, counted once when the answer is first recorded."},
			[]string{"chain", "flow", "status"}),
		deposits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_deposits_total",
			Help: "Deposit notices published (status seen=2, credited=1, failed=0), once each."},
			[]string{"chain", "symbol", "status"}),
		requestToBroadcast: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "payflow_request_to_broadcast_seconds",
			Help:    "From the payment workflow's start to its transfer's first broadcast accepted by the node.",
			Buckets: latencyBuckets}, []string{"chain", "flow"}),
		requestToAnswer: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "payflow_request_to_answer_seconds",
			Help:    "From the payment workflow's start to its answer being recorded.",
			Buckets: latencyBuckets}, []string{"chain", "flow", "status"}),
		wsReconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_ws_reconnects_total",
			Help: "WebSocket head subscriptions dialled again after the first, by chain task."},
			[]string{"chain", "component"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_deliveries_total",
			Help: "Request deliveries handled by the starter, by outcome."},
			[]string{"flow", "outcome"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_dead_letters_total",
			Help: "Request deliveries sent to the dead-letter queue."},
			[]string{"flow"}),
		shortTransfers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_short_transfers_total",
			Help: "Paid token transfers that moved less to the recipient than was sent (a fee on transfer), once each."},
			[]string{"chain", "symbol"}),
		chainRefused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "payflow_chain_refused",
			Help: "1 when this worker refused to serve the chain (its node serves another chain id, a token's decimals differ from the config, or its services could not be set up), else 0."},
			[]string{"chain"}),
		answersRelayed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_answers_relayed_total",
			Help: "Answers and notices published by the relay because they stayed unpublished past its grace period (their run stopped before publishing them)."},
			[]string{"flow"}),
	}
	m.held = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_payments_held_total",
		Help: "Withdraw and pay requests held for an operator's approval, by reason (threshold: above the asset's approval threshold; velocity_wallet, velocity_recipient: over a 24 h velocity limit), once per reason when the payment is first decided."},
		[]string{"chain", "reason"})
	for _, f := range []protocol.Flow{protocol.FlowTopup, protocol.FlowWithdraw, protocol.FlowPay} {
		m.answersRelayed.WithLabelValues(string(f))
	}
	m.reg.MustRegister(m.payments, m.deposits, m.requestToBroadcast, m.requestToAnswer, m.wsReconnects,
		m.deliveries, m.deadLetters, m.shortTransfers, m.chainRefused, m.answersRelayed, m.held,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(callcount.Collectors()...)
	return m
}

// Registry is where every payflow and Temporal SDK collector is registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format, for /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second})
}

// Mount adds GET /metrics to next's routes: /metrics is served from the
// registry, every other path by next.
func (m *Metrics) Mount(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("/", next)
	return mux
}

// ShortTransfer counts a paid payment whose token moved less to the
// recipient than was sent (a fee on transfer). Call it once per payment,
// with Payment.
func (m *Metrics) ShortTransfer(chain, symbol string) {
	if m == nil {
		return
	}
	m.shortTransfers.WithLabelValues(chain, symbol).Inc()
}

// Held counts a payment held for an operator's approval for reason
// (Held*); a payment held for two reasons counts under each. Call it once
// per payment: when its velocity decision is first taken.
func (m *Metrics) Held(chain, reason string) {
	if m == nil {
		return
	}
	m.held.WithLabelValues(chain, reason).Inc()
}

// Payment counts a decided payment and observes its request→answer time
// (from start, the workflow's start; zero skips the histogram). Call it once
// per payment: when its answer is first recorded.
func (m *Metrics) Payment(chain string, flow protocol.Flow, status int, start time.Time) {
	if m == nil {
		return
	}
	s := StatusFailed
	if status == protocol.StatusSucceeded {
		s = StatusSucceeded
	}
	m.payments.WithLabelValues(chain, string(flow), s).Inc()
	if !start.IsZero() {
		m.requestToAnswer.WithLabelValues(chain, string(flow), s).Observe(max(time.Since(start).Seconds(), 0))
	}
}

// Broadcast observes a payment's request→broadcast time (from start, the
// workflow's start; zero records nothing). Call it once per transfer: when
// its first broadcast is accepted.
func (m *Metrics) Broadcast(chain string, flow protocol.Flow, start time.Time) {
	if m == nil || start.IsZero() {
		return
	}
	m.requestToBroadcast.WithLabelValues(chain, string(flow)).Observe(max(time.Since(start).Seconds(), 0))
}

// Deposit counts a published deposit notice of status (protocol.Status*).
// Call it once per notice: when it is first marked published.
func (m *Metrics) Deposit(chain, symbol string, status int) {
	if m == nil {
		return
	}
	s := DepositFailed
	switch status {
	case protocol.StatusPending:
		s = DepositSeen
	case protocol.StatusSucceeded:
		s = DepositCredited
	}
	m.deposits.WithLabelValues(chain, symbol, s).Inc()
}

// AnswerRelayed counts an answer (or deposit notice) of flow published by
// the answers relay. Call it once per answer: when the relay marks it
// published.
func (m *Metrics) AnswerRelayed(flow protocol.Flow) {
	if m == nil {
		return
	}
	m.answersRelayed.WithLabelValues(string(flow)).Inc()
}

// Delivery counts a request delivery's outcome (Outcome*); a dead-lettered
// one also counts in payflow_dead_letters_total.
func (m *Metrics) Delivery(flow, outcome string) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(flow, outcome).Inc()
	if outcome == OutcomeDeadLettered {
		m.deadLetters.WithLabelValues(flow).Inc()
	}
}

// Reconnect counts one WebSocket reconnect of a chain task (Component*).
func (m *Metrics) Reconnect(chain, component string) {
	if m == nil {
		return
	}
	m.wsReconnects.WithLabelValues(chain, component).Inc()
}

// CountReconnects wraps a chain task's WebSocket dial: every successful dial
// after the first counts as a reconnect of component. (The chain package
// redials only after a subscription dropped, or when the task restarts on
// taking the chain's lease back.)
func CountReconnects[T any](m *Metrics, chain, component string, dial func(context.Context) (T, error)) func(context.Context) (T, error) {
	var dialled atomic.Bool
	return func(ctx context.Context) (T, error) {
		c, err := dial(ctx)
		if err == nil && dialled.Swap(true) {
			m.Reconnect(chain, component)
		}
		return c, err
	}
}

// Init creates the series of chain's payments, deposits of symbols, and
// reconnects at zero, so that they exist before the first event: a rate
// or an alert over them then counts that event too.
func (m *Metrics) Init(chain string, symbols []string) {
	if m == nil {
		return
	}
	for _, flow := range []protocol.Flow{protocol.FlowWithdraw, protocol.FlowPay} {
		for _, s := range []string{StatusSucceeded, StatusFailed} {
			m.payments.WithLabelValues(chain, string(flow), s)
		}
	}
	for _, sym := range symbols {
		for _, s := range []string{DepositSeen, DepositCredited, DepositFailed} {
			m.deposits.WithLabelValues(chain, sym, s)
		}
	}
	for _, c := range []string{ComponentListener, ComponentTracker} {
		m.wsReconnects.WithLabelValues(chain, c)
	}
	for _, r := range []string{HeldThreshold, HeldVelocityWallet, HeldVelocityRecipient} {
		m.held.WithLabelValues(chain, r)
	}
	m.chainRefused.WithLabelValues(chain).Set(0)
}

// ChainRefused sets payflow_chain_refused of chain to 1: this worker will not
// serve it (wrong chain id, wrong token decimals, a failed setup). The other
// chains go on; the refused chain's workflows wait in its task queue until a
// worker serves it, so the gauge is what tells an operator (an alert fires).
func (m *Metrics) ChainRefused(chain string) {
	if m == nil {
		return
	}
	m.chainRefused.WithLabelValues(chain).Set(1)
}

// InitDeliveries creates the delivery and dead-letter series of flows at zero.
func (m *Metrics) InitDeliveries(flows ...string) {
	if m == nil {
		return
	}
	for _, f := range flows {
		for _, o := range []string{OutcomeStarted, OutcomeDuplicate, OutcomeRefused, OutcomeDeadLettered, OutcomeRequeued} {
			m.deliveries.WithLabelValues(f, o)
		}
		m.deadLetters.WithLabelValues(f)
	}
}
