package integration

import (
	"database/sql"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"payflow/internal/stacktest"
)

// samples is one scrape: "name{k="v",…}" (labels sorted) → value; a
// histogram's sample count is under name_count.
type samples map[string]float64

// scrape reads a /metrics endpoint of the running stack.
func scrape(t *testing.T, url string) samples {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	out := samples{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(ls)
			key := func(suffix string) string {
				if len(ls) == 0 {
					return name + suffix
				}
				return name + suffix + "{" + strings.Join(ls, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key("_count")] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// scrapeSum scrapes every url and adds up each series over them: the
// workers' /metrics, each counting the events its process handled, read as
// one.
func scrapeSum(t *testing.T, urls []string) samples {
	t.Helper()
	out := samples{}
	for _, u := range urls {
		for k, v := range scrape(t, u) {
			out[k] += v
		}
	}
	return out
}

// workerMetrics is the /metrics endpoint of every worker of the stack
// (several with PAYFLOW_WORKERS).
func workerMetrics(t *testing.T, st *stacktest.Stack) []string {
	t.Helper()
	urls := st.WorkerMetricsURLs()
	if len(urls) == 0 {
		t.Fatalf("stack.json has no metrics_urls for the worker (%v): run `make up`", st.MetricsURLs)
	}
	return urls
}

// delta is after - before of every series whose key starts with prefix and
// moved.
func delta(before, after samples, prefix string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if strings.HasPrefix(k, prefix) && v != before[k] {
			out[k] = v - before[k]
		}
	}
	return out
}

// dbNow is the database's clock, as text to compare created_at with.
func dbNow(t *testing.T, db *sql.DB) string {
	t.Helper()
	var now string
	if err := db.QueryRow("SELECT CAST(NOW(6) AS CHAR)").Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

// others lists what payflow recorded between from and to that is none of
// ours (ids prefixed by one of mine): answers and notices stored or
// published, transfers signed. from is moved 2 s earlier, for a row stored
// just before and counted just after the first scrape.
func others(t *testing.T, db *sql.DB, from, to string, mine ...string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT message_id FROM outbox
			WHERE created_at BETWEEN CAST(? AS DATETIME(6)) - INTERVAL 2 SECOND AND CAST(? AS DATETIME(6))
			   OR published_at BETWEEN CAST(? AS DATETIME(6)) - INTERVAL 2 SECOND AND CAST(? AS DATETIME(6))
		UNION ALL SELECT workflow_id FROM signed_txs
			WHERE created_at BETWEEN CAST(? AS DATETIME(6)) - INTERVAL 2 SECOND AND CAST(? AS DATETIME(6))`,
		from, to, from, to, from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ours := false
		for _, p := range mine {
			ours = ours || strings.HasPrefix(id, p)
		}
		if !ours {
			out = append(out, id)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsCountTheStacksEvents: the workers' (summed over every worker
// process) and the starter's /metrics, scraped before and after one withdraw, one pay and
// one deposit on the real stack, moved by exactly those events: payments by
// flow and status, the request→broadcast and request→answer histograms, the
// deposit's two notices (seen, credited), and the three deliveries started.
// The Temporal SDK's metrics are on the same endpoints.
//
// Other tests may use the stack meanwhile. A round in which payflow recorded
// anything else (an answer, a notice or a transfer that is not ours, or a
// delivery more) cannot be compared exactly: it is done again, up to three
// times.
func TestMetricsCountTheStacksEvents(t *testing.T) {
	st := stacktest.Load(t)
	workers, starter := workerMetrics(t, st), st.MetricsURLs["starter"]
	if starter == "" {
		t.Fatalf("stack.json has no metrics_urls for the starter (%v): run `make up`", st.MetricsURLs)
	}
	db := st.DB(t)
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	wresp := st.Collect(t, withdrawResp, "queue_id")
	presp := st.Collect(t, payResp, "queue_id")
	tresp := st.Collect(t, topupResp, "address")

	for round := 1; ; round++ {
		from := dbNow(t, db)
		wBefore, sBefore := scrapeSum(t, workers), scrape(t, starter)

		wq, pq := stacktest.RandomID("it-metrics-w-"), stacktest.RandomID("it-metrics-p-")
		st.Publish(t, withdrawKey, withdrawBody(wq, walletByLabel(t, db, "user-1"), stacktest.RandomAddress(), "1.25"), true)
		st.Publish(t, payKey, payBody(pq, stacktest.RandomID("order-"), walletByLabel(t, db, "user-2"),
			stacktest.RandomAddress(), "0.75"), true)
		key, _ := crypto.GenerateKey()
		addr := stacktestLower(common.Address(crypto.PubkeyToAddress(key.PublicKey)))
		st.Publish(t, topupKey, []byte(fmt.Sprintf(`{"chain":"ETH","symbol":"USDT","address":%q,"timestamp":%d}`,
			addr, time.Now().Unix())), true)
		waitFor(t, time.Minute, "the watch of "+addr, func() bool {
			var n int
			_ = db.QueryRow("SELECT COUNT(*) FROM watched_addresses WHERE address=?", addr).Scan(&n)
			return n == 1
		})
		rcpt := faucetTransfer(t, st, eth, usdt, addr, 2_000_000)

		if got := wresp.Wait(t, wq, 1, responseWait)[0]; status(got) != "1" {
			t.Fatalf("withdraw answered %s (%v)", status(got), got.Body["error"])
		}
		if got := presp.Wait(t, pq, 1, responseWait)[0]; status(got) != "1" {
			t.Fatalf("pay answered %s (%v)", status(got), got.Body["error"])
		}
		notices := tresp.Wait(t, addr, 2, responseWait)
		for _, n := range notices {
			if s := status(n); s != "2" && s != "1" {
				t.Fatalf("deposit notice status %s (%v)", s, n.Body["error"])
			}
		}

		// The counters move right after what they count is recorded (the
		// answer, the notice's publication): wait for them, then a while
		// longer, so a count that came twice would show.
		want := map[string]float64{
			`payflow_payments_total{chain="ETH",flow="withdraw",status="succeeded"}`:                  1,
			`payflow_payments_total{chain="ETH",flow="pay",status="succeeded"}`:                       1,
			`payflow_request_to_answer_seconds_count{chain="ETH",flow="withdraw",status="succeeded"}`: 1,
			`payflow_request_to_answer_seconds_count{chain="ETH",flow="pay",status="succeeded"}`:      1,
			`payflow_request_to_broadcast_seconds_count{chain="ETH",flow="withdraw"}`:                 1,
			`payflow_request_to_broadcast_seconds_count{chain="ETH",flow="pay"}`:                      1,
			`payflow_deposits_total{chain="ETH",status="seen",symbol="USDT"}`:                         1,
			`payflow_deposits_total{chain="ETH",status="credited",symbol="USDT"}`:                     1,
		}
		wantStarter := map[string]float64{
			`payflow_deliveries_total{flow="withdraw",outcome="started"}`: 1,
			`payflow_deliveries_total{flow="pay",outcome="started"}`:      1,
			`payflow_deliveries_total{flow="topup",outcome="started"}`:    1,
		}
		reached := func(got, want map[string]float64) bool {
			for k, v := range want {
				if got[k] < v {
					return false
				}
			}
			return true
		}
		var wAfter, sAfter samples
		waitFor(t, time.Minute, "the counters to move", func() bool {
			wAfter, sAfter = scrapeSum(t, workers), scrape(t, starter)
			return reached(delta(wBefore, wAfter, "payflow_"), want) && reached(delta(sBefore, sAfter, "payflow_"), wantStarter)
		})
		time.Sleep(quietInterval)
		wAfter, sAfter = scrapeSum(t, workers), scrape(t, starter)
		to := dbNow(t, db)

		foreign := others(t, db, from, to, "withdraw-"+wq, "pay-"+pq, "deposit-ETH-"+strings.ToLower(rcpt.TxHash.Hex()))
		gotW := delta(wBefore, wAfter, "payflow_")
		gotS := delta(sBefore, sAfter, "payflow_deliveries_total")
		if len(foreign) > 0 || fmt.Sprint(gotS) != fmt.Sprint(wantStarter) {
			if round == 3 {
				t.Fatalf("the stack was never quiet for a round: payflow also recorded %v; the starter's deliveries moved %v",
					foreign, gotS)
			}
			t.Logf("round %d: payflow also recorded %v (deliveries %v); once more", round, foreign, gotS)
			continue
		}
		// Exactly our events: nothing else in the counters and histograms,
		// gauges aside (they follow the database, not events).
		for k, v := range gotW {
			if strings.HasPrefix(k, "payflow_payments_total") || strings.HasPrefix(k, "payflow_deposits_total") ||
				strings.HasPrefix(k, "payflow_request_to_") {
				if want[k] != v {
					t.Errorf("%s moved by %v, want %v", k, v, want[k])
				}
			}
		}
		for k, v := range want {
			if gotW[k] != v {
				t.Errorf("%s moved by %v, want %v", k, gotW[k], v)
			}
		}
		if d := delta(sBefore, sAfter, "payflow_dead_letters_total"); len(d) != 0 {
			t.Errorf("dead letters moved: %v", d)
		}
		// The Temporal SDK's own metrics are on both endpoints (same registry).
		completed := delta(wBefore, wAfter, "temporal_workflow_completed_total")
		var withdraws, pays float64
		for k, v := range completed {
			switch {
			case strings.Contains(k, `workflow_type="Withdraw"`):
				withdraws += v
			case strings.Contains(k, `workflow_type="Pay"`):
				pays += v
			}
		}
		if withdraws != 1 || pays != 1 {
			t.Errorf("temporal_workflow_completed_total moved by %v Withdraw and %v Pay, want 1 each (%v)", withdraws, pays, completed)
		}
		if d := delta(sBefore, sAfter, "temporal_request_total"); len(d) == 0 {
			t.Errorf("the starter's temporal_request_total did not move (it started three workflows)")
		}
		for k := range wAfter {
			for _, bad := range []string{"queue_id=", "address=", "tx_hash=", wq, pq, addr} {
				if strings.HasPrefix(k, "payflow_") && strings.Contains(k, bad) {
					t.Errorf("unbounded label in %s", k)
				}
			}
		}
		return
	}
}
