// Package grafana holds payflow's Grafana dashboard and the provisioning that
// docker-compose.yml mounts. No Grafana runs on the development machines, so
// its Go tests check the dashboard's model and the compose wiring; the
// integration test TestDashboardQueriesRunOnPrometheus runs every query of
// the dashboard on the dev stack's real Prometheus.
package grafana

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("dashboards/payflow.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboards/payflow.json: %v", err)
	}
	return d
}

// TestDashboardModel: the dashboard is a Grafana model that provisions and
// renders: a uid, unique panel ids, every query on the $datasource variable
// (a Prometheus datasource), panels inside the 24-column grid, none overlapping.
func TestDashboardModel(t *testing.T) {
	d := load(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "datasource" && v.Query != "prometheus" {
			t.Errorf("variable %s picks %v datasources, not prometheus", v.Name, v.Query)
		}
	}
	if vars["datasource"] != "datasource" {
		t.Errorf("no $datasource variable: %v", vars)
	}
	ids := map[int]bool{}
	cells := map[[2]int]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the grid", p.Title, g)
		}
		overlapped := map[string]bool{}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := cells[[2]int{x, y}]; ok && !overlapped[other] {
					overlapped[other] = true
					t.Errorf("panel %q overlaps %q at %d,%d", p.Title, other, x, y)
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want prometheus ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" || q.RefID == "" || refs[q.RefID] {
				t.Errorf("panel %q: query %q (refId %q) empty or refId repeated", p.Title, q.Expr, q.RefID)
			}
			refs[q.RefID] = true
		}
	}
}

// TestDashboardShowsWhatTheIssueAsks: flows, latency, in-flight transfers,
// lag, balances and alerts.
func TestDashboardShowsWhatTheIssueAsks(t *testing.T) {
	var exprs strings.Builder
	for _, p := range load(t).Panels {
		for _, q := range p.Targets {
			exprs.WriteString(q.Expr + "\n")
		}
	}
	for _, want := range []string{
		"payflow_payments_total", "payflow_deposits_total", "payflow_deliveries_total", // flows
		"payflow_request_to_answer_seconds_bucket", "payflow_request_to_broadcast_seconds_bucket", // latency
		"payflow_transfers_in_flight", "payflow_transfer_oldest_age_seconds", "payflow_stuck_payments", // in flight
		"payflow_listener_lag_blocks", "payflow_listener_lag_seconds", // lag
		"payflow_wallet_balance", "payflow_reconciliation_mismatches", // balances
		"payflow_treasury_hot_balance", "payflow_treasury_hot_ceiling", "payflow_treasury_hot_floor",
		"payflow_treasury_cold_balance", // tiers
		"ALERTS{",                       // alerts
	} {
		if !strings.Contains(exprs.String(), want) {
			t.Errorf("no panel queries %s", want)
		}
	}
}

// TestComposeProvisionsGrafana: docker-compose.yml mounts the provisioning
// where Grafana reads it and the dashboards where the provider looks, and the
// datasource points at the compose prometheus service.
func TestComposeProvisionsGrafana(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	compose := read("../../docker-compose.yml")
	provider := regexp.MustCompile(`(?m)^\s+path: (\S+)$`).FindStringSubmatch(read("provisioning/dashboards/payflow.yml"))
	if provider == nil {
		t.Fatal("provisioning/dashboards/payflow.yml names no path")
	}
	for _, mount := range []string{
		"./deploy/grafana/provisioning:/etc/grafana/provisioning",
		"./deploy/grafana/dashboards:" + provider[1],
		"./deploy/prometheus:/etc/payflow/prometheus",
	} {
		if !strings.Contains(compose, mount) {
			t.Errorf("docker-compose.yml does not mount %s", mount)
		}
	}
	if ds := read("provisioning/datasources/prometheus.yml"); !strings.Contains(ds, "type: prometheus") || !strings.Contains(ds, "url: http://prometheus:9090") {
		t.Errorf("the datasource is not the compose prometheus service:\n%s", ds)
	}
	if !regexp.MustCompile(`(?m)^  prometheus:$`).MatchString(compose) || !strings.Contains(compose, "--web.listen-address=0.0.0.0:9090") {
		t.Error("docker-compose.yml has no prometheus service on :9090")
	}
}
