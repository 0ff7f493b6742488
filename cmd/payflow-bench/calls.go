package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"payflow/internal/stacktest"
)

// payflow's own requests per payment, counted by payflow's processes and
// served on their /metrics (stack.json's metrics_urls: the workers, the
// starter, the signer): SQL statements by verb and first table
// (payflow_db_statements_total), JSON-RPC calls to the nodes by method
// (payflow_node_calls_total, and the HTTP requests that carried them) and
// the signer's answers (payflow_signer_requests_total). Read before and
// after a batch like Temporal's persistence requests; they count whatever
// the processes did meanwhile (the metrics sampler, reconciliation), which
// the floor's run, where payflow's processes only idle, shows.

// callSnapshot is one reading of every process: count by "kind/label".
type callSnapshot map[string]float64

// callProbe counts one batch.
type callProbe struct {
	urls   map[string]string
	before callSnapshot
}

func startCallProbe(ctx context.Context, st *stacktest.Stack) *callProbe {
	p := &callProbe{urls: st.MetricsURLs}
	p.before = scrapeCalls(ctx, p.urls)
	return p
}

// callDelta is what a batch asked of MariaDB, the nodes and the signer.
type callDelta map[string]float64

func (p *callProbe) done(ctx context.Context) callDelta {
	after := scrapeCalls(ctx, p.urls)
	d := callDelta{}
	for k, a := range after {
		b, ok := p.before[k]
		if !ok { // a series born during the batch
			b = 0
		}
		if v := a - b; v > 0 {
			d[k] = v
		} else if v < 0 { // the process restarted: what it counted since
			d[k] = a
		}
	}
	return d
}

// scrapeCalls reads every process's counters; a process that does not answer
// is left out (its calls are then missing, not wrong).
func scrapeCalls(ctx context.Context, urls map[string]string) callSnapshot {
	out := callSnapshot{}
	for proc, url := range urls {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			cancel()
			continue
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			continue
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil {
			continue
		}
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				v := counterValue(m)
				switch strings.TrimSuffix(name, "_total") {
				case "payflow_db_statements":
					kind := l["verb"]
					if l["table"] != "" {
						kind += " " + l["table"]
					}
					out["sql/"+kind] += v
					out["sqlproc/"+proc] += v
				case "payflow_node_calls":
					out["rpc/"+l["method"]] += v
				case "payflow_node_requests":
					out["http/"] += v
				case "payflow_signer_requests":
					out["signer/"+l["verdict"]] += v
				}
			}
		}
	}
	return out
}

// sum is the total of one kind ("sql", "rpc", …).
func (d callDelta) sum(kind string) float64 {
	t := 0.0
	for k, v := range d {
		if strings.HasPrefix(k, kind+"/") {
			t += v
		}
	}
	return t
}

// top lists a kind's labels per payment, largest first, at least 0.05 each,
// at most n.
func (d callDelta) top(kind string, payments, n int) string {
	type kv struct {
		k string
		v float64
	}
	var xs []kv
	for k, v := range d {
		if label, ok := strings.CutPrefix(k, kind+"/"); ok && v/float64(payments) >= 0.05 {
			xs = append(xs, kv{label, v})
		}
	}
	sort.Slice(xs, func(i, j int) bool {
		if xs[i].v != xs[j].v {
			return xs[i].v > xs[j].v
		}
		return xs[i].k < xs[j].k
	})
	var parts []string
	for i, x := range xs {
		if i == n {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", x.k, x.v/float64(payments)))
	}
	return strings.Join(parts, ", ")
}

// perPayment formats the batch's requests per payment.
func (d callDelta) perPayment(payments int) string {
	if payments <= 0 {
		return "no payment"
	}
	if len(d) == 0 {
		return "not counted (no payflow process served payflow_db_statements_total)"
	}
	per := func(v float64) float64 { return v / float64(payments) }
	return fmt.Sprintf("SQL statements %.1f (by process: %s; by kind: %s); node JSON-RPC calls %.1f in %.1f HTTP requests (%s); signer answers %.2f (%s)",
		per(d.sum("sql")), d.top("sqlproc", payments, 6), d.top("sql", payments, 60),
		per(d.sum("rpc")), per(d.sum("http")), d.top("rpc", payments, 12),
		per(d.sum("signer")), d.top("signer", payments, 3))
}
