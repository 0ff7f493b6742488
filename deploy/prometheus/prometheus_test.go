// Package prometheus holds payflow's Prometheus configuration template, alert
// rules and their promtool unit tests (`make check-rules`). Its Go tests check
// what promtool cannot: that the rules and the dashboard name only metrics
// internal/metrics declares, that every alert has promtool cases where it fires and
// where it does not, and that every user of the template fills it in.
package prometheus

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// servedMetrics returns the names of the metrics payflow serves: the
// "payflow_..." names internal/metrics declares (histograms by base name).
func servedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../../internal/metrics/*.go")
	if err != nil {
		t.Fatal(err)
	}
	risk, err := filepath.Glob("../../risk/*/*.go") // screening's metrics
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, risk...)
	served := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		for _, m := range regexp.MustCompile(`"(payflow_[a-z_]+)"`).FindAllStringSubmatch(read(t, f), -1) {
			served[m[1]] = true
		}
	}
	if !served["payflow_payments_total"] || !served["payflow_transfers_in_flight"] {
		t.Fatalf("internal/metrics declares no payflow metrics the rules rely on: %v", served)
	}
	return served
}

var metricName = regexp.MustCompile(`payflow_[a-z_]+`)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRulesAndDashboardNameKnownMetrics: a misspelt metric in a rule is an
// alert that can never fire, and promtool does not notice.
func TestRulesAndDashboardNameKnownMetrics(t *testing.T) {
	files, err := filepath.Glob("../grafana/dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards found (%v)", err)
	}
	files = append(files, "alerts.yml", "alerts_test.yml")
	knownMetrics := servedMetrics(t)
	for _, f := range files {
		for _, m := range metricName.FindAllString(read(t, f), -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(m, suffix); ok && knownMetrics[b] {
					base = b
				}
			}
			if !knownMetrics[base] {
				t.Errorf("%s names %s, which internal/metrics does not declare", f, m)
			}
		}
	}
}

// TestEveryAlertIsUnitTested: each alert of alerts.yml has a promtool case
// where it fires and one where it does not.
func TestEveryAlertIsUnitTested(t *testing.T) {
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllStringSubmatch(read(t, "alerts.yml"), -1)
	if len(alerts) == 0 {
		t.Fatal("no alerts in alerts.yml")
	}
	cases := regexp.MustCompile(`alertname: (\w+)\s*\n\s*exp_alerts:(\s*\[\])?`).FindAllStringSubmatch(read(t, "alerts_test.yml"), -1)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		if c[2] == "" {
			fires[c[1]] = true
		} else {
			quiet[c[1]] = true
		}
	}
	for _, a := range alerts {
		if !fires[a[1]] {
			t.Errorf("alerts_test.yml has no case where %s fires", a[1])
		}
		if !quiet[a[1]] {
			t.Errorf("alerts_test.yml has no case where %s does not fire", a[1])
		}
	}
}

// TestTemplateIsFilledIn: stack.sh and docker-compose.yml each replace every
// placeholder of prometheus.tmpl.yml, and no other.
func TestTemplateIsFilledIn(t *testing.T) {
	placeholder := regexp.MustCompile(`@[A-Z_]+@`)
	want := map[string]bool{}
	for _, p := range placeholder.FindAllString(read(t, "prometheus.tmpl.yml"), -1) {
		want[p] = true
	}
	if len(want) == 0 {
		t.Fatal("no placeholders in prometheus.tmpl.yml")
	}
	replaced := regexp.MustCompile(`s\|(@[A-Z_]+@)\|`)
	for _, f := range []string{"../../scripts/stack.sh", "../../docker-compose.yml"} {
		got := map[string]bool{}
		for _, m := range replaced.FindAllStringSubmatch(read(t, f), -1) {
			got[m[1]] = true
		}
		var missing, extra []string
		for p := range want {
			if !got[p] {
				missing = append(missing, p)
			}
		}
		for p := range got {
			if !want[p] {
				extra = append(extra, p)
			}
		}
		sort.Strings(missing)
		sort.Strings(extra)
		if len(missing)+len(extra) > 0 {
			t.Errorf("%s: placeholders not filled in %v, unknown %v", f, missing, extra)
		}
	}
}
