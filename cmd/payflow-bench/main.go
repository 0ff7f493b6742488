// Command payflow-bench measures payflow on the running local stack (`make
// up`) against the targets and prints them side by side:
//
//	payments   withdraw+pay through RabbitMQ, flat out and at a fixed rate,
//	           exactly-once checked, with Temporal's persistence requests
//	           and the CPU of every stack process per payment; and flat out
//	           over two chains (ETH and BSC), beside the one-chain figure
//	baseline   the same payments through the fair baseline workflow
//	           (baseline.go), in the same invocation, and the ratio
//	deposits   Transfer logs matched against 1,000,000 watched addresses
//	ledger     durable postings/s on one hot wallet, 64 writers
//	broadcast  signed transactions/s accepted by the dev chain, one wallet
//	tracker    confirmation tracker RPCs and ms per head at 100 and 10,000
//	           transfers in flight (simulated node, tracker.go)
//
// `make bench` runs it; `make bench QUICK=1` runs smaller sizes.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"payflow/internal/stacktest"
)

type result struct {
	Name, Measured, Target, Verdict, Note string
}

var (
	quick     = flag.Bool("quick", false, "smaller sizes (make bench QUICK=1)")
	nPay      = flag.Int("n", 3000, "payments (withdraw + pay) in the flat-out run")
	rate      = flag.Int("rate", 0, "requests/s of the fixed-rate run (0: half the flat-out rate)")
	nRate     = flag.Int("n-rate", 1000, "payments in the fixed-rate run")
	nBaseline = flag.Int("n-baseline", 0, "payments through the fair baseline (0: as many as -n)")
	nTwo      = flag.Int("n-two-chains", 0, "payments in the flat-out run over two chains (0: as many as -n)")
	nWatch    = flag.Int("watch", 1_000_000, "watched addresses")
	nPost     = flag.Int("postings", 20000, "ledger postings (group commit and, unless -quick, one transaction per posting)")
	nTx       = flag.Int("txs", 10000, "broadcaster transactions (at least 10,000 unless -quick)")
	only      = flag.String("only", "", "comma list of phases: payments,two-chains,flat,baseline,floor,deposits,ledger,broadcast,tracker,failover (payments includes two-chains; flat is payflow's flat-out run alone)")
	ageN      = flag.Int("age", 0, "aged payments to load into the ledger and the chain before the payment phases, after a flat-out run on the stack as it was (aging.go)")
	phaseFlag = flag.String("phase", "", "internal: run one phase in this process and print JSON")
	// temporalMetricsFlag overrides where Temporal's own metrics are read.
	temporalMetricsFlag = flag.String("temporal-metrics", "", "the Temporal dev server's /metrics URL (default: port in .dev/pids/temporal.metrics-port, else 8234)")
)

func main() {
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	// The algorithms a figure is compared with ("before") run smaller
	// batches under -quick: they are the slow half of their phase.
	oldPost, batchedTx := *nPost, max(*nTx, minBatchedTxs)
	if *quick {
		*nPay, *nRate, *nPost = 200, 100, 5000
		oldPost, batchedTx = 1000, 2000
	}
	if *nBaseline <= 0 {
		*nBaseline = *nPay // the same batch size: the ratio compares like with like
	}
	if *nTwo <= 0 {
		*nTwo = *nPay // likewise for two chains / one chain
	}
	if *phaseFlag == "deposits" {
		r := benchDeposits(*nWatch)
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	want := func(p string) bool { return *only == "" || strings.Contains(","+*only+",", ","+p+",") }
	st, err := loadStack()
	if err != nil {
		fmt.Fprintln(os.Stderr, "payflow-bench:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	var rows []result
	started := time.Now()
	mark := started
	took := func(phase string) { // the bench's own time, to keep QUICK=1 short
		fmt.Printf("  (%s took %.0f s)\n", phase, time.Since(mark).Seconds())
		mark = time.Now()
	}
	host, _ := os.Hostname()
	fmt.Printf("payflow bench — %s — %s, %d cores\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), host, numCPU())
	if want("deposits") {
		rows = append(rows, runSubprocess("deposits")...)
		printRows(rows[len(rows)-2:])
		took("deposits")
	}
	if want("ledger") {
		r := benchLedger(ctx, st, *nPost, oldPost)
		rows = append(rows, r)
		printRows([]result{r})
		took("ledger")
	}
	if want("broadcast") {
		r := benchBroadcaster(ctx, st, batchedTx)
		rows = append(rows, r...)
		printRows(r)
		took("broadcast")
	}
	if want("tracker") {
		heads := 10
		if *quick {
			heads = 3
		}
		r := benchTracker(ctx, st, heads)
		rows = append(rows, r...)
		printRows(r)
		took("tracker")
	}
	if want("failover") {
		secs := 30
		if *quick {
			secs = 15
		}
		r := benchFailover(ctx, st, 10, time.Duration(secs)*time.Second, !*quick)
		rows = append(rows, r...)
		printRows(r)
		took("failover")
	}
	// payflow flat out, then the fair baseline right after it (the closest
	// in time, on the same stack), then payflow at a fixed rate.
	// Then the same flat-out figure over two chains, then payflow at a
	// fixed rate (one chain).
	one, _ := payChains(st, false)
	var flat, base, fresh paymentRun
	wantTwo := want("payments") || want("two-chains")
	if *ageN > 0 {
		// The same flat-out run before the load, for the aged one to be
		// compared with in this invocation.
		if wantTwo || want("flat") {
			fresh = benchPayments(ctx, st, *nPay, 0, false, one)
			fmt.Printf("  payflow flat out before aging: %.1f payments/s\n", fresh.perSec())
			took("payflow flat out, before aging")
		}
		r := ageStack(ctx, st, *ageN).row()
		rows = append(rows, r)
		printRows([]result{r})
		took("aging")
	}
	if wantTwo || want("flat") {
		flat = benchPayments(ctx, st, *nPay, 0, false, one)
		fmt.Printf("  payflow flat out: %.1f payments/s, %s Temporal persistence requests\n", flat.perSec(), flat.persistence.measured(flat.n))
		took("payflow flat out")
		if fresh.n > 0 {
			r := agingRows(fresh, flat, *ageN)
			rows = append(rows, r...)
			printRows(r)
		}
	}
	if want("baseline") {
		base = benchPayments(ctx, st, *nBaseline, 0, true, one)
		fmt.Printf("  fair baseline flat out: %.1f payments/s, %s Temporal persistence requests\n", base.perSec(), base.persistence.measured(base.n))
		took("fair baseline")
	}
	var twoRows []result
	if wantTwo {
		var two paymentRun
		skipped := ""
		if cs, ok := payChains(st, true); ok {
			two = benchPayments(ctx, st, *nTwo, 0, false, cs)
			fmt.Printf("  payflow flat out, two chains (%s): %.1f payments/s, %s Temporal persistence requests\n",
				strings.Join(two.chains, "+"), two.perSec(), two.persistence.measured(two.n))
		} else {
			skipped = "skipped: stack.json lists one chain"
		}
		twoRows = twoChainRows(flat, two, skipped)
		took("two chains")
	}
	if want("payments") {
		half := *rate
		if half <= 0 {
			half = max(1, int(flat.perSec()/2))
		}
		fixed := benchPayments(ctx, st, *nRate, half, false, one)
		took("fixed rate")
		r := paymentRows(flat, fixed, st.TemporalNamespace)
		rows = append(rows, r...)
		printRows(r)
	}
	if want("flat") && !wantTwo {
		rows = append(rows, exactlyOnce("payments", flat))
		printRows(rows[len(rows)-1:])
	}
	if wantTwo {
		if !want("payments") { // -only two-chains: still check the one-chain run
			twoRows = append([]result{exactlyOnce("payments", flat)}, twoRows...)
		}
		rows = append(rows, twoRows...)
		printRows(twoRows)
	}
	if want("floor") {
		shaped := benchFloor(ctx, st, *nPay, false)
		bare := benchFloor(ctx, st, *nPay, true)
		r := append([]result{shaped.row, bare.row}, floorRows(flat, shaped, st.TemporalNamespace)...)
		rows = append(rows, r...)
		printRows(r)
		took("Temporal floor")
	}
	if want("baseline") {
		r := baselineRows(base, flat, st.TemporalNamespace)
		rows = append(rows, r...)
		printRows(r)
	}
	fmt.Printf("  (the bench took %.0f s)\n", time.Since(started).Seconds())
	fmt.Println()
	fmt.Println("| measure | measured | target | verdict | note |")
	fmt.Println("|---|---|---|---|---|")
	failed := false
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.Name, r.Measured, r.Target, r.Verdict, r.Note)
		if strings.HasPrefix(r.Verdict, "FAIL (correctness") {
			failed = true
		}
	}
	if failed {
		os.Exit(1) // a lost, duplicated or gapped result is a bug, not a speed figure
	}
}

func printRows(rs []result) {
	for _, r := range rs {
		fmt.Printf("  %-44s %-22s target %-18s %s %s\n", r.Name, r.Measured, r.Target, r.Verdict, r.Note)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func loadStack() (*stacktest.Stack, error) {
	p, err := stacktest.Path()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var s stacktest.Stack
	return &s, json.Unmarshal(b, &s)
}

// runSubprocess runs a phase in a fresh process so its RSS is its own.
func runSubprocess(phase string) []result {
	args := []string{"-phase", phase, fmt.Sprintf("-watch=%d", *nWatch)}
	out, err := exec.Command(os.Args[0], args...).Output()
	if err != nil {
		return []result{{Name: phase, Measured: "error", Verdict: "FAIL (correctness)", Note: err.Error()}}
	}
	var r depositResult
	if err := json.Unmarshal(out, &r); err != nil {
		return []result{{Name: phase, Measured: "error", Verdict: "FAIL (correctness)", Note: err.Error()}}
	}
	return []result{
		{Name: fmt.Sprintf("deposit detection, %d watched addresses", r.Watched), Measured: fmt.Sprintf("%.0f logs/s", r.LogsPerSec),
			Target: "≥ 1,000,000 logs/s", Verdict: verdict(r.LogsPerSec >= 1_000_000), Note: fmt.Sprintf("%d logs, %d matched", r.Logs, r.Matched)},
		{Name: "deposit detection RSS", Measured: fmt.Sprintf("%.0f MB", r.RSSMB), Target: "≤ 300 MB", Verdict: verdict(r.RSSMB <= 300),
			Note: "whole process, after matching"},
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
