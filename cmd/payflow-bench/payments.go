package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/ethclient/gethclient"
	"github.com/ethereum/go-ethereum/rpc"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.temporal.io/sdk/client"

	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/workflows"
)

type paymentRun struct {
	n, rate                int
	baseline               bool
	elapsed                time.Duration
	ok, failed, missing    int
	duplicates             int
	distinctTx, minedOK    int
	broadcastLat, respLat  []time.Duration
	historyEvents          float64
	firstError, setupError string
	// persistence is what Temporal's persistence counted over the batch,
	// and cpu where the stack's CPU went (first request to last answer,
	// plus 3 s for duplicates and the workflows' completions).
	persistence persistenceDelta
	cpu         string
	cpuMs       float64            // CPU ms per payment, all processes
	cpuBy       map[string]float64 // CPU ms per payment by process
	// calls is what payflow's processes asked of MariaDB, the nodes and
	// the signer over the batch (calls.go).
	calls callDelta
	// chains the requests alternated over (pairs of withdraw + pay), and
	// per chain the answered-ok payments and the transfers its node mined.
	chains       []string
	okByChain    map[string]int
	minedByChain map[string]int
}

// payChain is one dev chain a payment run sends on: its name in requests and
// its node's RPC and WebSocket URLs (stack.json's chains).
type payChain struct{ name, rpcURL, wsURL string }

// payChains is the chains of the one-chain run (the first chain, "ETH", that
// stack.json's top-level fields describe) or of the two-chain run (it and the
// first other chain by name). ok is false when the stack has one chain only.
func payChains(st *stacktest.Stack, two bool) ([]payChain, bool) {
	first := payChain{name: "ETH", rpcURL: st.ETHRPCURL, wsURL: st.ETHWSURL}
	if c, ok := st.Chains["ETH"]; ok {
		first.rpcURL, first.wsURL = c.ETHRPCURL, c.ETHWSURL
	}
	if !two {
		return []payChain{first}, true
	}
	var names []string
	for _, name := range st.EVMChains() {
		if name != first.name {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, false
	}
	sort.Strings(names)
	c := st.Chains[names[0]]
	return []payChain{first, {name: names[0], rpcURL: c.ETHRPCURL, wsURL: c.ETHWSURL}}, true
}

func chainNames(cs []payChain) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.name)
	}
	return out
}

func (r paymentRun) perSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

type arrival struct {
	at   time.Time
	body map[string]any
}

// benchPayments publishes n withdraw/pay requests (rate per second, 0 = flat
// out) through RabbitMQ — or, baseline, starts the fair baseline's workflow
// (baseline.go) for each directly — and waits for every answer. Requests go
// in withdraw + pay pairs, the pairs alternating over chains (symbol USDT on
// each), each chain's from the dev wallets hot, user-1..3 in turn.
func benchPayments(ctx context.Context, st *stacktest.Stack, n, rate int, baseline bool, chains []payChain) paymentRun {
	run := paymentRun{n: n, rate: rate, baseline: baseline, chains: chainNames(chains),
		okByChain: map[string]int{}, minedByChain: map[string]int{}}
	fail := func(err error) paymentRun { run.setupError = err.Error(); return run }
	if len(chains) == 0 {
		return fail(fmt.Errorf("no chain to send on"))
	}
	db, err := sql.Open("mysql", st.MySQLDSN)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	senders := map[string][]string{}
	wallets := ledger.NewWallets(db, nil)
	for _, c := range chains {
		for _, label := range []string{"hot", "user-1", "user-2", "user-3"} {
			w, err := wallets.ByLabel(ctx, c.name, label)
			if err != nil {
				return fail(fmt.Errorf("dev wallet %s on %s: %w", label, c.name, err))
			}
			senders[c.name] = append(senders[c.name], w.Address)
		}
	}
	opts, err := st.TemporalOptions()
	if err != nil {
		return fail(err)
	}
	opts.Logger = nopLogger{}
	tc, err := client.Dial(opts)
	if err != nil {
		return fail(err)
	}
	defer tc.Close()
	nodes := map[string]*ethclient.Client{}
	for _, c := range chains {
		eth, err := ethclient.DialContext(ctx, c.rpcURL)
		if err != nil {
			return fail(fmt.Errorf("%s node: %w", c.name, err))
		}
		defer eth.Close()
		nodes[c.name] = eth
	}

	// Broadcast times: when each transaction hash first reaches its chain's
	// pool (one pending-transaction subscription per chain; a transaction's
	// hash covers its chain id, so one map serves every chain).
	var seenMu sync.Mutex
	seen := map[common.Hash]time.Time{}
	for _, c := range chains {
		rc, err := rpc.DialContext(ctx, c.wsURL)
		if err != nil {
			return fail(fmt.Errorf("%s node's WebSocket: %w", c.name, err))
		}
		defer rc.Close()
		pending := make(chan common.Hash, 1<<16)
		sub, err := gethclient.New(rc).SubscribePendingTransactions(ctx, pending)
		if err != nil {
			return fail(fmt.Errorf("subscribing to %s's pending transactions: %w", c.name, err))
		}
		defer sub.Unsubscribe()
		go func() {
			for h := range pending {
				seenMu.Lock()
				if _, ok := seen[h]; !ok {
					seen[h] = time.Now()
				}
				seenMu.Unlock()
			}
		}()
	}

	// Responses.
	conn, err := amqp.Dial(st.AMQPURL)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	answers := map[string][]arrival{}
	prefix := stacktest.RandomID("bench-") + "-"
	for _, q := range []string{"pay.withdraw.return.queue", "pay.auto.return.queue"} {
		ch, err := conn.Channel()
		if err != nil {
			return fail(err)
		}
		ds, err := ch.Consume(q, "", true, false, false, false, nil)
		if err != nil {
			return fail(err)
		}
		go func() {
			for d := range ds {
				var m map[string]any
				if json.Unmarshal(d.Body, &m) != nil {
					continue
				}
				qid, _ := m["queue_id"].(string)
				if !strings.HasPrefix(qid, prefix) {
					continue
				}
				mu.Lock()
				answers[qid] = append(answers[qid], arrival{at: time.Now(), body: m})
				mu.Unlock()
			}
		}()
	}
	pubCh, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	if err := pubCh.Confirm(false); err != nil {
		return fail(err)
	}

	// The baseline's workflows run on a worker in this process; they are
	// started by 8 goroutines, so that starting them is not what limits it.
	var starts chan func() error
	startErrs := make(chan error, 1)
	var startWG sync.WaitGroup
	if baseline {
		stopWorker, err := startBaselineWorker(tc)
		if err != nil {
			return fail(err)
		}
		defer stopWorker()
		starts = make(chan func() error, n)
		for w := 0; w < 8; w++ {
			startWG.Add(1)
			go func() {
				defer startWG.Done()
				for start := range starts {
					if err := start(); err != nil {
						select {
						case startErrs <- err:
						default:
						}
					}
				}
			}()
		}
	}

	sent := make(map[string]time.Time, n)
	ids := make([]string, n)
	chainOf := make(map[string]string, n)
	probe := startPersistenceProbe(ctx)
	callsProbe := startCallProbe(ctx, st)
	cpu0 := cpuSeconds()
	start := time.Now()
	var confirms []*amqp.DeferredConfirmation
	for i := 0; i < n; i++ {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		qid := fmt.Sprintf("%s%d", prefix, i)
		ids[i] = qid
		ci, si := requestSlot(i, len(chains), 4)
		cn := chains[ci].name
		from, to := senders[cn][si], stacktest.RandomAddress()
		chainOf[qid] = cn
		isPay := i%2 == 1
		sent[qid] = time.Now()
		if baseline {
			in := BaselineInput{Flow: protocol.FlowWithdraw, ActivityTaskQueue: workflows.DefaultTaskQueue,
				Request: protocol.PaymentRequest{QueueID: qid, FromAddress: from, ToAddress: to,
					Amount: protocol.MustAmount("0.01"), Chain: cn, Symbol: "USDT"}}
			if isPay {
				in.Flow, in.Request.OrderID = protocol.FlowPay, "order-"+qid
			}
			id := baselineIDPrefix + qid
			starts <- func() error {
				if _, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: baselineTaskQueue},
					baselineWorkflowName, in); err != nil {
					return fmt.Errorf("starting baseline %s: %w", id, err)
				}
				return nil
			}
			continue
		}
		body := fmt.Sprintf(`{"queue_id":%q,"from_address":%q,"to_address":%q,"amount":0.01,"chain":%q,"symbol":"USDT","timestamp":%d`,
			qid, from, to, cn, time.Now().Unix())
		key := "pay.withdraw.routing.key"
		if isPay {
			body += fmt.Sprintf(`,"order_id":"order-%s"`, qid)
			key = "pay.auto.routing.key"
		}
		signed, err := protocol.SignBody(st.SignKey, []byte(body+"}"))
		if err != nil {
			return fail(err)
		}
		c, err := pubCh.PublishWithDeferredConfirmWithContext(ctx, "pay.exchange", key, true, false,
			amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: signed})
		if err != nil {
			return fail(err)
		}
		confirms = append(confirms, c)
	}
	for _, c := range confirms {
		if ok, err := c.WaitContext(ctx); !ok || err != nil {
			return fail(fmt.Errorf("publish not confirmed: %v", err))
		}
	}
	if baseline {
		close(starts)
		startWG.Wait()
		select {
		case err := <-startErrs:
			return fail(err)
		default:
		}
	}

	// Wait for every answer (bounded).
	// Bounded: a lost answer must end the run as a failure, not hang it.
	per := 50 * time.Millisecond
	if baseline {
		per = 200 * time.Millisecond // the baseline is expected several times slower
	}
	deadline := time.Now().Add(3*time.Minute + time.Duration(n)*per)
	var last time.Time
	for time.Now().Before(deadline) {
		mu.Lock()
		got := len(answers)
		mu.Unlock()
		if got >= n {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // let any duplicate arrive before counting
	cpu1 := cpuSeconds()
	run.cpu, run.cpuMs = cpuSplit(cpu0, cpu1, n, "payment")
	run.cpuBy = cpuPer(cpu0, cpu1, n)
	run.persistence = probe.done(ctx)
	run.calls = callsProbe.done(ctx)
	mu.Lock()
	defer mu.Unlock()
	hashes := map[string]map[string]bool{} // chain → transaction hashes
	for _, c := range chains {
		hashes[c.name] = map[string]bool{}
	}
	for _, qid := range ids {
		as := answers[qid]
		if len(as) == 0 {
			run.missing++
			continue
		}
		run.duplicates += len(as) - 1
		a := as[0]
		if a.at.After(last) {
			last = a.at
		}
		run.respLat = append(run.respLat, a.at.Sub(sent[qid]))
		if fmt.Sprint(a.body["status"]) != "1" {
			run.failed++
			if run.firstError == "" {
				run.firstError = fmt.Sprint(a.body["error"])
			}
			continue
		}
		run.ok++
		run.okByChain[chainOf[qid]]++
		h, _ := a.body["tx_hash"].(string)
		hashes[chainOf[qid]][h] = true
		seenMu.Lock()
		if t, ok := seen[common.HexToHash(h)]; ok {
			run.broadcastLat = append(run.broadcastLat, t.Sub(sent[qid]))
		}
		seenMu.Unlock()
	}
	run.elapsed = last.Sub(start)
	for _, c := range chains { // each chain's transfers counted on its own node
		m := countMined(ctx, nodes[c.name], hashes[c.name])
		run.distinctTx += len(hashes[c.name])
		run.minedOK += m
		run.minedByChain[c.name] = m
	}
	run.historyEvents = historyEvents(ctx, tc, ids, baseline)
	return run
}

// requestSlot is the chain and the sender (of nSenders) of request i: the
// requests go in withdraw (even i) + pay (odd i) pairs, pair k to chain k mod
// nChains. On one chain the sender is i mod nSenders; on each of several
// chains the senders still all take turns.
func requestSlot(i, nChains, nSenders int) (chainIdx, senderIdx int) {
	k := i / 2
	return k % nChains, (k/nChains*2 + i%2) % nSenders
}

func countMined(ctx context.Context, eth *ethclient.Client, hashes map[string]bool) int {
	var mu sync.Mutex
	okCount := 0
	work := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range work {
				r, err := eth.TransactionReceipt(ctx, common.HexToHash(h))
				if err == nil && r.Status == 1 {
					mu.Lock()
					okCount++
					mu.Unlock()
				}
			}
		}()
	}
	for h := range hashes {
		work <- h
	}
	close(work)
	wg.Wait()
	return okCount
}

// historyEvents averages the history length of up to 20 of a batch's
// payments (queue_ids ids, alternating withdraw and pay; baseline: the fair
// baseline's workflows).
func historyEvents(ctx context.Context, tc client.Client, ids []string, baseline bool) float64 {
	wfIDs := make([]string, len(ids))
	for i, id := range ids {
		switch {
		case baseline:
			wfIDs[i] = baselineIDPrefix + id
		case i%2 == 1:
			wfIDs[i] = workflows.PayWorkflowID(id)
		default:
			wfIDs[i] = workflows.WithdrawWorkflowID(id)
		}
	}
	return historyLength(ctx, tc, wfIDs)
}

// historyLength averages the history length of up to 20 workflows spread
// over ids.
func historyLength(ctx context.Context, tc client.Client, ids []string) float64 {
	total, count := 0.0, 0
	for i := 0; i < len(ids) && count < 20; i += max(1, len(ids)/20) {
		d, err := tc.DescribeWorkflowExecution(ctx, ids[i], "")
		if err != nil {
			continue
		}
		total += float64(d.WorkflowExecutionInfo.HistoryLength)
		count++
	}
	if count == 0 {
		return 0
	}
	return total / float64(count)
}

func paymentRows(flat, fixed paymentRun, namespace string) []result {
	var rows []result
	for _, r := range []paymentRun{flat, fixed} {
		if r.setupError != "" {
			rows = append(rows, result{Name: "payments", Measured: "error", Verdict: "FAIL (correctness)", Note: r.setupError})
		}
	}
	rows = append(rows,
		result{Name: "payments end to end, flat out", Measured: fmt.Sprintf("%.1f payments/s", flat.perSec()),
			Target: "—", Verdict: "-",
			Note: fmt.Sprintf("n=%d (its verdicts: beside the Temporal floor and the fair baseline); req→broadcast p50 %s p99 %s; req→response p50 %s p99 %s", flat.n,
				ms(percentile(flat.broadcastLat, .5)), ms(percentile(flat.broadcastLat, .99)),
				ms(percentile(flat.respLat, .5)), ms(percentile(flat.respLat, .99)))},
		result{Name: fmt.Sprintf("request→broadcast p99 at %d/s (half the flat-out rate)", fixed.rate),
			Measured: ms(percentile(fixed.broadcastLat, .99)),
			Target:   "≤ 300 ms", Verdict: verdict(len(fixed.broadcastLat) > 0 && percentile(fixed.broadcastLat, .99) <= 300*time.Millisecond),
			Note: fmt.Sprintf("n=%d; p50 %s; req→response p50 %s p99 %s", fixed.n, ms(percentile(fixed.broadcastLat, .5)),
				ms(percentile(fixed.respLat, .5)), ms(percentile(fixed.respLat, .99)))},
		exactlyOnce("payments", flat, fixed),
		result{Name: "Temporal history events per payment", Measured: fmt.Sprintf("%.0f", flat.historyEvents), Target: "(budget)",
			Verdict: "-", Note: "average over a sample of 20 workflows"},
		persistenceRow("payflow (flat out)", flat, namespace),
		result{Name: "where the flat-out run's CPU went", Measured: "-", Target: "-", Verdict: "-",
			Note: flat.cpu + " (bench = the load generator)"},
		result{Name: "payflow's own requests per payment (flat out)", Measured: fmt.Sprintf("%.1f SQL, %.1f RPC", flat.calls.sum("sql")/float64(max(flat.n, 1)),
			flat.calls.sum("rpc")/float64(max(flat.n, 1))), Target: "(budget)", Verdict: "-",
			Note: flat.calls.perPayment(flat.n) + "; counted by payflow's processes (worker, signer) on their /metrics, whole batch"},
	)
	return rows
}

// twoChainRows prints the flat-out payment figure over two chains beside the
// one-chain figure of the same invocation.
func twoChainRows(one, two paymentRun, skipped string) []result {
	name := "payments end to end, flat out, two chains"
	if skipped != "" {
		return []result{{Name: name, Measured: "-", Target: "—", Verdict: "-", Note: skipped}}
	}
	if len(two.chains) > 0 {
		name += " (" + strings.Join(two.chains, "+") + ")"
	}
	if two.setupError != "" {
		return []result{{Name: name, Measured: "error", Verdict: "FAIL (correctness)", Note: two.setupError}}
	}
	var split []string
	for _, c := range two.chains {
		split = append(split, fmt.Sprintf("%s %d ok, %d mined", c, two.okByChain[c], two.minedByChain[c]))
	}
	ratio := result{Name: "payments two chains / one chain", Measured: "-", Target: "—", Verdict: "-",
		Note: "payments/s of the flat-out runs, same invocation; both chains' nodes share the same cores"}
	if one.perSec() > 0 && two.perSec() > 0 {
		ratio.Measured = fmt.Sprintf("%.2f× (%.1f / %.1f)", two.perSec()/one.perSec(), two.perSec(), one.perSec())
	}
	return []result{
		{Name: name, Measured: fmt.Sprintf("%.1f payments/s", two.perSec()), Target: "—", Verdict: "-",
			Note: fmt.Sprintf("n=%d, withdraw+pay pairs alternating chains, USDT; %s; req→broadcast p50 %s p99 %s; req→response p50 %s p99 %s; %s",
				two.n, strings.Join(split, ", "), ms(percentile(two.broadcastLat, .5)), ms(percentile(two.broadcastLat, .99)),
				ms(percentile(two.respLat, .5)), ms(percentile(two.respLat, .99)), two.cpu)},
		ratio,
		exactlyOnce("payments over two chains", two),
	}
}

func exactlyOnce(name string, runs ...paymentRun) result {
	total, ok, lost, dup, failed, tx, mined := 0, 0, 0, 0, 0, 0, 0
	firstErr := ""
	for _, r := range runs {
		total += r.n
		ok += r.ok
		lost += r.missing
		dup += r.duplicates
		failed += r.failed
		tx += r.distinctTx
		mined += r.minedOK
		if firstErr == "" {
			firstErr = r.firstError
		}
	}
	res := result{Name: name + " exactly once", Measured: fmt.Sprintf("%d/%d answered once, %d transfers mined", ok, total, mined),
		Target: "none lost or duplicated", Verdict: "met"}
	if lost > 0 || dup > 0 || failed > 0 || tx != ok || mined != ok {
		res.Verdict = "FAIL (correctness)"
		res.Note = fmt.Sprintf("lost %d, duplicated %d, failed %d (%s), distinct tx %d, mined %d", lost, dup, failed, firstErr, tx, mined)
	}
	return res
}

func baselineRows(base, flat paymentRun, namespace string) []result {
	rows := []result{
		{Name: "fair baseline (regular activity per step, one confirmation signal)", Measured: fmt.Sprintf("%.1f payments/s", base.perSec()),
			Target: "—", Verdict: "-", Note: fmt.Sprintf("n=%d, same run; started by the bench (no RabbitMQ intake); %.0f history events per payment; req→broadcast p50 %s; req→response p50 %s p99 %s",
				base.n, base.historyEvents, ms(percentile(base.broadcastLat, .5)), ms(percentile(base.respLat, .5)),
				ms(percentile(base.respLat, .99)))},
		exactlyOnce("fair baseline payments", base),
		persistenceRow("fair baseline", base, namespace),
		{Name: "where the fair baseline's CPU went", Measured: "-", Target: "-", Verdict: "-",
			Note: base.cpu + " (bench = the baseline's workflow worker + the load generator)"},
	}
	if base.setupError != "" {
		rows[0].Measured, rows[0].Verdict, rows[0].Note = "error", "FAIL (correctness)", base.setupError
	}
	ratio := result{Name: "payflow / fair baseline", Measured: "-", Target: "≥ 2.5×", Verdict: "-",
		Note: "payments/s of the flat-out runs, same invocation"}
	if base.perSec() > 0 && flat.perSec() > 0 {
		r := flat.perSec() / base.perSec()
		ratio.Measured, ratio.Verdict = fmt.Sprintf("%.2f× (%.1f / %.1f)", r, flat.perSec(), base.perSec()), verdict(r >= 2.5)
	}
	rows = append(rows, ratio)
	if flat.cpuMs > 0 && base.cpuMs > 0 {
		pc, bc := float64(numCPU())*1000/flat.cpuMs, float64(numCPU())*1000/base.cpuMs
		rows = append(rows, result{Name: "CPU-bound ceiling, payflow / fair baseline", Measured: fmt.Sprintf("%.2f× (%.0f / %.0f payments/s)", pc/bc, pc, bc),
			Target: "—", Verdict: "-", Note: fmt.Sprintf("%d cores × 1000 / CPU ms per payment of all processes (%.1f / %.1f ms); "+
				"steadier than the flat-out ratio, which a short batch leaves bound by confirmation latency", numCPU(), flat.cpuMs, base.cpuMs)})
	}
	if p, b := flat.persistence.perPayment(flat.n), base.persistence.perPayment(base.n); p > 0 && b > 0 {
		rows = append(rows, result{Name: "Temporal persistence requests, payflow / fair baseline", Measured: fmt.Sprintf("%.2f×", p/b),
			Target: "(budget)", Verdict: "-", Note: fmt.Sprintf("%.1f / %.1f per payment", p, b)})
	}
	return rows
}

// persistenceRow prints a batch's Temporal persistence requests per payment.
func persistenceRow(who string, r paymentRun, namespace string) result {
	return result{Name: "Temporal persistence requests, " + who, Measured: r.persistence.measured(r.n), Target: "(budget)",
		Verdict: "-", Note: r.persistence.split(namespace, r.n) + "; from the dev server's /metrics, whole batch"}
}
