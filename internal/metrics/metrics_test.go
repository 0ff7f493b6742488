package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"payflow/intake"
	"payflow/internal/metrics"
	"payflow/protocol"
	"payflow/rmq"
)

// values gathers g into "name{k="v",…}" → value (counters, gauges, and a
// histogram's _count and _sum).
func values(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := func(suffix string) string { return f.GetName() + suffix + labelString(m.GetLabel()) }
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key("_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key("_sum")] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func TestPaymentCountsAndObservesAnswerLatency(t *testing.T) {
	m := metrics.New()
	m.Init("ETH", []string{"USDT"})
	before := values(t, m.Registry())
	require.Contains(t, before, `payflow_payments_total{chain="ETH",flow="withdraw",status="succeeded"}`, "series exist at zero")

	m.Payment("ETH", protocol.FlowWithdraw, protocol.StatusSucceeded, time.Now().Add(-3*time.Second))
	m.Payment("ETH", protocol.FlowPay, protocol.StatusFailed, time.Now().Add(-time.Second))
	m.Payment("ETH", protocol.FlowPay, protocol.StatusFailed, time.Time{}) // no start: counted, not observed

	v := values(t, m.Registry())
	require.Equal(t, 1.0, v[`payflow_payments_total{chain="ETH",flow="withdraw",status="succeeded"}`])
	require.Equal(t, 2.0, v[`payflow_payments_total{chain="ETH",flow="pay",status="failed"}`])
	require.Equal(t, 0.0, v[`payflow_payments_total{chain="ETH",flow="withdraw",status="failed"}`])
	require.Equal(t, 1.0, v[`payflow_request_to_answer_seconds_count{chain="ETH",flow="withdraw",status="succeeded"}`])
	require.GreaterOrEqual(t, v[`payflow_request_to_answer_seconds_sum{chain="ETH",flow="withdraw",status="succeeded"}`], 3.0)
	require.Equal(t, 1.0, v[`payflow_request_to_answer_seconds_count{chain="ETH",flow="pay",status="failed"}`])
}

func TestBroadcastDepositDeliveryReconnect(t *testing.T) {
	m := metrics.New()
	m.Broadcast("ETH", protocol.FlowPay, time.Now().Add(-2*time.Second))
	m.Broadcast("ETH", protocol.FlowPay, time.Time{}) // no start: nothing
	m.Deposit("ETH", "USDT", protocol.StatusPending)
	m.Deposit("ETH", "USDT", protocol.StatusSucceeded)
	m.Deposit("ETH", "USDT", protocol.StatusFailed)
	m.Delivery("withdraw", metrics.OutcomeStarted)
	m.Delivery("withdraw", metrics.OutcomeDeadLettered)
	m.Delivery("pay", metrics.OutcomeRequeued)
	m.Reconnect("ETH", metrics.ComponentListener)

	v := values(t, m.Registry())
	require.Equal(t, 1.0, v[`payflow_request_to_broadcast_seconds_count{chain="ETH",flow="pay"}`])
	require.GreaterOrEqual(t, v[`payflow_request_to_broadcast_seconds_sum{chain="ETH",flow="pay"}`], 2.0)
	for _, s := range []string{"seen", "credited", "failed"} {
		require.Equal(t, 1.0, v[`payflow_deposits_total{chain="ETH",status="`+s+`",symbol="USDT"}`], s)
	}
	require.Equal(t, 1.0, v[`payflow_deliveries_total{flow="withdraw",outcome="started"}`])
	require.Equal(t, 1.0, v[`payflow_deliveries_total{flow="withdraw",outcome="dead_lettered"}`])
	require.Equal(t, 1.0, v[`payflow_dead_letters_total{flow="withdraw"}`], "a dead letter counts in both")
	require.Equal(t, 1.0, v[`payflow_deliveries_total{flow="pay",outcome="requeued"}`])
	require.NotContains(t, v, `payflow_dead_letters_total{flow="pay"}`)
	require.Equal(t, 1.0, v[`payflow_ws_reconnects_total{chain="ETH",component="listener"}`])
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *metrics.Metrics
	m.Payment("ETH", protocol.FlowPay, 1, time.Now())
	m.Broadcast("ETH", protocol.FlowPay, time.Now())
	m.Deposit("ETH", "USDT", 1)
	m.Delivery("pay", metrics.OutcomeStarted)
	m.Reconnect("ETH", metrics.ComponentTracker)
	m.Init("ETH", nil)
	m.InitDeliveries("pay")
	require.NoError(t, m.Register(collectors.NewBuildInfoCollector()))
	h, err := m.TemporalHandler(nil)
	require.NoError(t, err)
	h.Counter("x").Inc(1)
}

func TestCountReconnectsSkipsTheFirstDialAndFailures(t *testing.T) {
	m := metrics.New()
	fail := true
	dial := metrics.CountReconnects(m, "ETH", metrics.ComponentTracker, func(context.Context) (int, error) {
		if fail {
			return 0, errors.New("refused")
		}
		return 1, nil
	})
	key := `payflow_ws_reconnects_total{chain="ETH",component="tracker"}`
	_, _ = dial(context.Background()) // failed: not a connection
	fail = false
	_, _ = dial(context.Background()) // the first connection
	require.NotContains(t, values(t, m.Registry()), key)
	_, _ = dial(context.Background())
	_, _ = dial(context.Background())
	require.Equal(t, 2.0, values(t, m.Registry())[key])
}

func TestMountServesMetricsAndPassesTheRest(t *testing.T) {
	m := metrics.New()
	m.Payment("ETH", protocol.FlowWithdraw, protocol.StatusSucceeded, time.Now())
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "api:"+r.URL.Path) })
	srv := httptest.NewServer(m.Mount(api))
	defer srv.Close()

	body := get(t, srv.URL+"/metrics")
	require.Contains(t, body, `payflow_payments_total{chain="ETH",flow="withdraw",status="succeeded"} 1`)
	require.Contains(t, body, "go_goroutines ")
	require.Contains(t, body, "process_cpu_seconds_total ")
	require.Equal(t, "api:/healthz", get(t, srv.URL+"/healthz"))
}

// The Temporal SDK's metrics reach the same registry through the
// OpenTelemetry contrib and exporter, named temporal_*.
func TestTemporalHandlerExportsOnTheSameRegistry(t *testing.T) {
	m := metrics.New()
	h, err := m.TemporalHandler(nil)
	require.NoError(t, err)
	tagged := h.WithTags(map[string]string{"namespace": "default"})
	tagged.Counter("temporal_request").Inc(2)
	tagged.Timer("temporal_workflow_task_execution_latency").Record(30 * time.Millisecond)
	tagged.Gauge("temporal_num_pollers").Update(3)

	v := values(t, m.Registry())
	require.Equal(t, 2.0, v[`temporal_request_total{namespace="default"}`], "%v", keys(v, "temporal"))
	require.Equal(t, 1.0, v[`temporal_workflow_task_execution_latency_seconds_count{namespace="default"}`], "%v", keys(v, "temporal"))
	require.Equal(t, 3.0, v[`temporal_num_pollers{namespace="default"}`], "%v", keys(v, "temporal"))
}

// No payflow series carries a per-request label.
func TestLabelsAreBounded(t *testing.T) {
	m := metrics.New()
	m.Init("ETH", []string{"USDT"})
	m.InitDeliveries("withdraw")
	m.Payment("ETH", protocol.FlowWithdraw, 1, time.Now())
	m.Broadcast("ETH", protocol.FlowWithdraw, time.Now())
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				require.NotContains(t, []string{"queue_id", "address", "tx_hash", "workflow_id", "order_id"}, l.GetName(), f.GetName())
			}
		}
	}
}

func keys(v map[string]float64, prefix string) []string {
	var out []string
	for k := range v {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

// The outcomes intake and rmq report are the label values of
// payflow_deliveries_total.
func TestDeliveryOutcomesAreTheLabelValues(t *testing.T) {
	require.Equal(t, metrics.OutcomeStarted, intake.OutcomeStarted)
	require.Equal(t, metrics.OutcomeDuplicate, intake.OutcomeDuplicate)
	require.Equal(t, metrics.OutcomeRefused, intake.OutcomeRefused)
	require.Equal(t, metrics.OutcomeRequeued, rmq.OutcomeRequeued)
	require.Equal(t, metrics.OutcomeDeadLettered, rmq.OutcomeDeadLettered)
}

// TestChainRefusedMarksOnlyThatChain: every chain's payflow_chain_refused
// exists at 0 from Init; refusing one sets it to 1 and leaves the others.
func TestChainRefusedMarksOnlyThatChain(t *testing.T) {
	m := metrics.New()
	m.Init("ETH", []string{"ETH"})
	m.Init("BSC", []string{"BNB"})
	v := values(t, m.Registry())
	require.Equal(t, 0.0, v[`payflow_chain_refused{chain="ETH"}`])
	require.Contains(t, v, `payflow_chain_refused{chain="BSC"}`, "series exist at zero")

	m.ChainRefused("BSC")
	v = values(t, m.Registry())
	require.Equal(t, 1.0, v[`payflow_chain_refused{chain="BSC"}`])
	require.Equal(t, 0.0, v[`payflow_chain_refused{chain="ETH"}`])

	var none *metrics.Metrics
	none.ChainRefused("ETH") // a nil Metrics records nothing
}
