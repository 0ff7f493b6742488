package signer

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"payflow/custody/signerapi"
	"payflow/internal/callcount"
)

// Metrics are the signer's Prometheus collectors on their own registry.
// Labels name chains, verdicts, reasons and backends only: never a key, an
// address or a workflow.
type Metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	signSeconds *prometheus.HistogramVec
}

func newMetrics(st *store, chains []string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_signer_requests_total",
			Help: "Sign requests answered, by chain (\"unknown\" for a chain the signer does not serve) and verdict (signed, replayed, refused)."},
			[]string{"chain", "verdict"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_signer_refusals_total",
			Help: "Sign requests refused, by reason."},
			[]string{"reason"}),
		signSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "payflow_signer_sign_seconds",
			Help:    "Time to sign one transaction with its key (the KMS's Sign, or opening a sealed key or the mnemonic), by backend.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}},
			[]string{"backend"}),
	}
	m.initChains(append(chains, "unknown"))
	for _, r := range refusalReasons {
		m.refusals.WithLabelValues(r)
	}
	m.reg.MustRegister(m.requests, m.refusals, m.signSeconds, &keysCollector{store: st},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(callcount.Collectors()...) // the signer's own database statements
	return m
}

// initChains shows 0 for every verdict of chains before their first request.
func (m *Metrics) initChains(chains []string) {
	for _, c := range chains {
		for _, v := range []string{signerapi.VerdictSigned, signerapi.VerdictReplayed, signerapi.VerdictRefused} {
			m.requests.WithLabelValues(c, v)
		}
	}
}

// Registry is the signer's registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second})
}

func (m *Metrics) answered(chain, verdict string) { m.requests.WithLabelValues(chain, verdict).Inc() }

func (m *Metrics) refused(chain, reason string) {
	m.requests.WithLabelValues(chain, signerapi.VerdictRefused).Inc()
	m.refusals.WithLabelValues(reason).Inc()
}

func (m *Metrics) signSecondsObserve(backend string, d time.Duration) {
	m.signSeconds.WithLabelValues(backend).Observe(d.Seconds())
}

// keysCollector reports payflow_signer_keys{backend} from signer_keys at
// each scrape: the KMS keys and sealed keys the signer holds (HD children
// have no row: the ledger's wallets name them).
type keysCollector struct{ store *store }

var keysDesc = prometheus.NewDesc("payflow_signer_keys",
	"Keys the signer holds in signer_keys, by backend (kms, envelope); HD children are not counted.", []string{"backend"}, nil)

func (c *keysCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keysDesc }

func (c *keysCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.store.keyCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(keysDesc, err)
		return
	}
	for _, b := range []string{signerapi.BackendKMS, signerapi.BackendEnvelope} {
		ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(n[b]), b)
	}
}
