package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"payflow/internal/stacktest"
)

// Temporal's persistence requests, counted by the dev server itself: its
// Prometheus endpoint (`temporal server start-dev --metrics-port`, which
// `make up` starts on 8234 and records in .dev/pids/temporal.metrics-port)
// serves persistence_requests{namespace,operation,service_name} and
// visibility_persistence_requests{operation,…}. The bench reads them before
// and after each measured batch; the difference over the batch's payments is
// the budget to halve. It includes whatever else the server did
// meanwhile (its own background work, and anyone else's workflows).

// persistenceSnapshot is one scrape: count by "namespace/operation", and
// visibility requests by "visibility/operation".
type persistenceSnapshot map[string]float64

// persistenceDelta is what one batch cost.
type persistenceDelta struct {
	// Err is why nothing could be counted ("" when counted).
	Err string
	// ByKey: requests by "namespace/operation" (visibility: "visibility/operation").
	ByKey map[string]float64
}

// temporalMetricsURL is the dev server's /metrics endpoint.
func temporalMetricsURL() string {
	if *temporalMetricsFlag != "" {
		return *temporalMetricsFlag
	}
	port := "8234"
	if p, err := stacktest.Path(); err == nil {
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "pids", "temporal.metrics-port")); err == nil &&
			strings.TrimSpace(string(b)) != "" {
			port = strings.TrimSpace(string(b))
		}
	}
	return "http://127.0.0.1:" + port + "/metrics"
}

// scrapePersistence reads the dev server's persistence request counters.
func scrapePersistence(ctx context.Context, url string) (persistenceSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping Temporal's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping Temporal's metrics at %s: %s", url, resp.Status)
	}
	return parsePersistence(resp.Body)
}

// parsePersistence extracts persistence_requests and
// visibility_persistence_requests (with or without the _total suffix an
// OpenTelemetry exporter adds) from a Prometheus text exposition.
func parsePersistence(r io.Reader) (persistenceSnapshot, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing Temporal's metrics: %w", err)
	}
	out := persistenceSnapshot{}
	found := false
	for name, f := range fams {
		base := strings.TrimSuffix(name, "_total")
		if base == "service_requests" { // the frontend's RPCs, by operation
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["service_name"] == "frontend" && labels["namespace"] != "temporal_system" {
					out[frontendKey+labels["operation"]] += counterValue(m)
				}
			}
			continue
		}
		if base != "persistence_requests" && base != "visibility_persistence_requests" {
			continue
		}
		found = found || base == "persistence_requests"
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			ns := labels["namespace"]
			if base == "visibility_persistence_requests" {
				ns = "visibility"
			}
			out[ns+"/"+labels["operation"]] += counterValue(m)
		}
	}
	if !found {
		return nil, fmt.Errorf("Temporal's metrics have no persistence_requests counter")
	}
	return out, nil
}

func counterValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	if u := m.GetUntyped(); u != nil {
		return u.GetValue()
	}
	return 0
}

// persistenceProbe counts one batch: start before it, done after.
type persistenceProbe struct {
	url    string
	before persistenceSnapshot
	err    error
}

func startPersistenceProbe(ctx context.Context) *persistenceProbe {
	p := &persistenceProbe{url: temporalMetricsURL()}
	p.before, p.err = scrapePersistence(ctx, p.url)
	return p
}

func (p *persistenceProbe) done(ctx context.Context) persistenceDelta {
	if p.err != nil {
		return persistenceDelta{Err: p.err.Error()}
	}
	after, err := scrapePersistence(ctx, p.url)
	if err != nil {
		return persistenceDelta{Err: err.Error()}
	}
	return diffPersistence(p.before, after)
}

// diffPersistence is after - before, by key (a counter that went down means
// the server restarted: its after value is what it counted since).
func diffPersistence(before, after persistenceSnapshot) persistenceDelta {
	d := persistenceDelta{ByKey: map[string]float64{}}
	for k, a := range after {
		v := a - before[k]
		if v < 0 {
			v = a
		}
		if v > 0 {
			d.ByKey[k] = v
		}
	}
	return d
}

// frontendKey prefixes the frontend's RPCs by operation in a snapshot:
// they are not persistence requests, and no total or split counts them.
const frontendKey = "frontend-rpc/"

// total is every request of the batch, visibility included.
func (d persistenceDelta) total() float64 {
	t := 0.0
	for k, v := range d.ByKey {
		if !strings.HasPrefix(k, frontendKey) {
			t += v
		}
	}
	return t
}

// frontend says which frontend RPCs the batch made, per payment: the
// total, and the operations of at least 0.05 per payment, largest first.
func (d persistenceDelta) frontend(payments int) string {
	if d.Err != "" || payments <= 0 {
		return "not counted"
	}
	ops := map[string]float64{}
	total := 0.0
	for k, v := range d.ByKey {
		if op, ok := strings.CutPrefix(k, frontendKey); ok {
			ops[op] += v
			total += v
		}
	}
	names := make([]string, 0, len(ops))
	for op, v := range ops {
		if v/float64(payments) >= 0.05 {
			names = append(names, op)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		if ops[names[i]] != ops[names[j]] {
			return ops[names[i]] > ops[names[j]]
		}
		return names[i] < names[j]
	})
	var parts []string
	for _, op := range names {
		parts = append(parts, fmt.Sprintf("%s %.2f", op, ops[op]/float64(payments)))
	}
	return fmt.Sprintf("%.1f (%s)", total/float64(payments), strings.Join(parts, ", "))
}

// perPayment is the headline: all persistence requests per payment.
func (d persistenceDelta) perPayment(payments int) float64 {
	if d.Err != "" || payments <= 0 {
		return 0
	}
	return d.total() / float64(payments)
}

// measured formats the headline figure.
func (d persistenceDelta) measured(payments int) string {
	if d.Err != "" || payments <= 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.1f per payment", d.perPayment(payments))
}

// split says where they went, per payment: the payments' namespace (its
// largest operations), the server's shard and system work, and visibility.
func (d persistenceDelta) split(namespace string, payments int) string {
	if d.Err != "" {
		return d.Err
	}
	if payments <= 0 {
		return "no payment"
	}
	per := func(v float64) string { return fmt.Sprintf("%.1f", v/float64(payments)) }
	var nsTotal, vis, other float64
	nsOps, otherOps := map[string]float64{}, map[string]float64{}
	for k, v := range d.ByKey {
		if strings.HasPrefix(k, frontendKey) {
			continue
		}
		ns, name, _ := strings.Cut(k, "/")
		switch ns {
		case namespace:
			nsTotal += v
			nsOps[name] += v
		case "visibility":
			vis += v
		default:
			other += v
			otherOps[name] += v
		}
	}
	top := func(ops map[string]float64, n int) string {
		names := make([]string, 0, len(ops))
		for name := range ops {
			names = append(names, name)
		}
		sort.Slice(names, func(i, j int) bool {
			if ops[names[i]] != ops[names[j]] {
				return ops[names[i]] > ops[names[j]]
			}
			return names[i] < names[j]
		})
		var parts []string
		for _, name := range names[:min(n, len(names))] {
			parts = append(parts, name+" "+per(ops[name]))
		}
		if len(parts) == 0 {
			return ""
		}
		return " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("namespace %s %s%s; shard and system %s%s; visibility %s", namespace, per(nsTotal), top(nsOps, 5),
		per(other), top(otherOps, 3), per(vis))
}
