package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"payflow/internal/stacktest"
)

// promWait bounds how long the dev Prometheus may take to scrape a target or
// evaluate the rules after a (re)start: a few 10 s scrape intervals.
const promWait = 2 * time.Minute

// promAPI calls the dev Prometheus's HTTP API and decodes data into out. It
// returns the API's error for a query Prometheus refused.
func promAPI(t *testing.T, st *stacktest.Stack, path string, params url.Values, out any) error {
	t.Helper()
	if st.PrometheusURL == "" {
		t.Fatal("stack.json has no prometheus_url: run `make up`")
	}
	u := strings.TrimRight(st.PrometheusURL, "/") + path
	if params != nil {
		u += "?" + params.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("the dev Prometheus does not answer: %v", err)
	}
	defer resp.Body.Close()
	var r struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("GET %s: %s: %v", u, resp.Status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
	}
	return nil
}

type promTarget struct {
	Labels     map[string]string `json:"labels"`
	ScrapeURL  string            `json:"scrapeUrl"`
	Health     string            `json:"health"`
	LastError  string            `json:"lastError"`
	LastScrape time.Time         `json:"lastScrape"`
}

// TestPrometheusScrapesTheStack: the dev Prometheus of `make up` has scraped
// the worker, the starter, payflow-signer and the Temporal dev server, including
// every endpoint stack.json lists in metrics_urls, and holds their samples.
func TestPrometheusScrapesTheStack(t *testing.T) {
	st := stacktest.Load(t)
	jobs := []string{"payflow-worker", "payflow-starter", "payflow-signer", "temporal"}
	// Every worker (several with PAYFLOW_WORKERS) is a target of payflow-worker.
	var byJob map[string][]promTarget
	var byURL map[string]promTarget
	deadline := time.Now().Add(promWait)
	for {
		var r struct {
			ActiveTargets []promTarget `json:"activeTargets"`
		}
		if err := promAPI(t, st, "/api/v1/targets", nil, &r); err != nil {
			t.Fatal(err)
		}
		byJob, byURL = map[string][]promTarget{}, map[string]promTarget{}
		allUp := true
		for _, tg := range r.ActiveTargets {
			byJob[tg.Labels["job"]] = append(byJob[tg.Labels["job"]], tg)
			byURL[tg.ScrapeURL] = tg
			allUp = allUp && tg.Health == "up"
		}
		for _, j := range jobs {
			allUp = allUp && len(byJob[j]) > 0
		}
		if allUp || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	for _, j := range jobs {
		if len(byJob[j]) == 0 {
			t.Errorf("Prometheus has no %s target", j)
		}
		for _, tg := range byJob[j] {
			if tg.Health != "up" || tg.LastScrape.IsZero() {
				t.Errorf("%s target %s is %q (last error %q)", j, tg.ScrapeURL, tg.Health, tg.LastError)
			}
		}
	}

	for _, p := range []string{"worker", "starter", "signer"} {
		if st.MetricsURLs[p] == "" {
			t.Errorf("stack.json's metrics_urls has no %s: %v", p, st.MetricsURLs)
		}
	}
	for p, u := range st.MetricsURLs {
		kind, _, _ := strings.Cut(p, "-") // worker-2 is a worker
		job := "payflow-" + kind
		if tg, ok := byURL[u]; !ok || tg.Health != "up" || tg.Labels["job"] != job {
			t.Errorf("the %s's metrics URL %s is not scraped as %s (%+v)", p, u, job, tg)
		}
	}

	// Samples arrived: the worker's own metrics and the Temporal server's.
	for _, q := range []string{
		`count({job="payflow-worker", __name__=~"payflow_.+"})`,
		`count({job="payflow-signer", __name__=~"payflow_signer_.+"})`,
		`count({job="temporal"})`,
	} {
		var v struct {
			Result []json.RawMessage `json:"result"`
		}
		if err := promAPI(t, st, "/api/v1/query", url.Values{"query": {q}}, &v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(v.Result) == 0 {
			t.Errorf("Prometheus holds no samples for %s", q)
		}
	}
}

// TestPrometheusLoadedTheRules: the dev Prometheus evaluates every alert of
// deploy/prometheus/alerts.yml, from that file, without errors.
func TestPrometheusLoadedTheRules(t *testing.T) {
	st := stacktest.Load(t)
	src, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllStringSubmatch(string(src), -1) {
		want = append(want, m[1])
	}
	sort.Strings(want)

	type rule struct {
		Name      string `json:"name"`
		Type      string `json:"type"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	}
	var got map[string]rule
	var files []string
	deadline := time.Now().Add(promWait)
	for {
		var r struct {
			Groups []struct {
				Name  string `json:"name"`
				File  string `json:"file"`
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		if err := promAPI(t, st, "/api/v1/rules", url.Values{"type": {"alert"}}, &r); err != nil {
			t.Fatal(err)
		}
		got, files = map[string]rule{}, nil
		for _, g := range r.Groups {
			files = append(files, g.File)
			if !strings.HasSuffix(g.File, "/deploy/prometheus/alerts.yml") {
				continue
			}
			for _, rl := range g.Rules {
				got[rl.Name] = rl
			}
		}
		evaluated := len(got) > 0
		for _, rl := range got {
			evaluated = evaluated && rl.Health != "unknown"
		}
		if evaluated || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if len(got) == 0 {
		t.Fatalf("Prometheus loaded no rules from deploy/prometheus/alerts.yml (rule files: %v)", files)
	}
	var names []string
	for n, rl := range got {
		names = append(names, n)
		if rl.Health != "ok" || rl.LastError != "" {
			t.Errorf("rule %s: health %q, error %q", n, rl.Health, rl.LastError)
		}
	}
	sort.Strings(names)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("Prometheus evaluates alerts %v, alerts.yml has %v", names, want)
	}
}

// TestDashboardQueriesRunOnPrometheus: every query of the Grafana dashboard
// is valid PromQL that the dev Prometheus evaluates (with the dashboard's
// variables set as Grafana would: all chains, a 1 m rate interval).
func TestDashboardQueriesRunOnPrometheus(t *testing.T) {
	st := stacktest.Load(t)
	b, err := os.ReadFile("../deploy/grafana/dashboards/payflow.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$chain", ".*")
	n := 0
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			n++
			expr := vars.Replace(q.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q: unknown variable in %s", p.Title, q.Expr)
				continue
			}
			if err := promAPI(t, st, "/api/v1/query", url.Values{"query": {expr}}, nil); err != nil {
				t.Errorf("panel %q: %s: %v", p.Title, expr, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("the dashboard has no queries")
	}
}
