package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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
	"payflow/protocol"
	"payflow/workflows"
)

type paymentRun struct {
	n, rate                int
	naive                  bool
	elapsed                time.Duration
	ok, failed, missing    int
	duplicates             int
	distinctTx, minedOK    int
	broadcastLat, respLat  []time.Duration
	historyEvents          float64
	firstError, setupError string
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
// out) through RabbitMQ — or, naive, starts the baseline workflow directly and
// feeds it one signal per block — and waits for every answer.
func benchPayments(ctx context.Context, st *stacktest.Stack, n, rate int, naive bool) paymentRun {
	run := paymentRun{n: n, rate: rate, naive: naive}
	fail := func(err error) paymentRun { run.setupError = err.Error(); return run }
	db, err := sql.Open("mysql", st.MySQLDSN)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	var senders []string
	for _, label := range []string{"hot", "user-1", "user-2", "user-3"} {
		var a string
		if err := db.QueryRowContext(ctx, "SELECT address FROM wallets WHERE label=?", label).Scan(&a); err != nil {
			return fail(fmt.Errorf("dev wallet %s: %w", label, err))
		}
		senders = append(senders, a)
	}
	tc, err := client.Dial(client.Options{HostPort: st.TemporalAddress, Namespace: st.TemporalNamespace, Logger: nopLogger{}})
	if err != nil {
		return fail(err)
	}
	defer tc.Close()
	eth, err := ethclient.DialContext(ctx, st.ETHRPCURL)
	if err != nil {
		return fail(err)
	}
	defer eth.Close()

	// Broadcast times: when each transaction hash first reaches geth's pool.
	var seenMu sync.Mutex
	seen := map[common.Hash]time.Time{}
	rc, err := rpc.DialContext(ctx, st.ETHWSURL)
	if err != nil {
		return fail(err)
	}
	defer rc.Close()
	pending := make(chan common.Hash, 1<<16)
	sub, err := gethclient.New(rc).SubscribePendingTransactions(ctx, pending)
	if err != nil {
		return fail(fmt.Errorf("subscribing to pending transactions: %w", err))
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

	// Naive baseline: its own worker in this process, and one signal per
	// block to every open naive workflow.
	open := map[string]bool{}
	var openMu sync.Mutex
	if naive {
		stopWorker, err := startNaiveWorker(tc)
		if err != nil {
			return fail(err)
		}
		defer stopWorker()
		hctx, stop := context.WithCancel(ctx)
		defer stop()
		go naiveBlockSignals(hctx, st, tc, &openMu, open)
	}

	sent := make(map[string]time.Time, n)
	ids := make([]string, n)
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
		from, to := senders[i%len(senders)], stacktest.RandomAddress()
		isPay := i%2 == 1
		sent[qid] = time.Now()
		if naive {
			req := protocol.PaymentRequest{QueueID: qid, FromAddress: from, ToAddress: to, Amount: protocol.MustAmount("0.01"),
				Chain: "ETH", Symbol: "USDT"}
			id := "naive-" + qid
			openMu.Lock()
			open[id] = true
			openMu.Unlock()
			if _, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: naiveTaskQueue},
				naiveWorkflowName, NaiveInput{Request: req, Confirmations: uint64(st.Confirmations),
					ActivityTaskQueue: workflows.DefaultTaskQueue}); err != nil {
				return fail(fmt.Errorf("starting naive %s: %w", id, err))
			}
			continue
		}
		body := fmt.Sprintf(`{"queue_id":%q,"from_address":%q,"to_address":%q,"amount":0.01,"chain":"ETH","symbol":"USDT","timestamp":%d`,
			qid, from, to, time.Now().Unix())
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

	// Wait for every answer (bounded).
	// Bounded: a lost answer must end the run as a failure, not hang it.
	per := 50 * time.Millisecond
	if naive {
		per = 400 * time.Millisecond // the baseline manages a few per second
	}
	deadline := time.Now().Add(3*time.Minute + time.Duration(n)*per)
	var last time.Time
	for time.Now().Before(deadline) {
		mu.Lock()
		got := len(answers)
		mu.Unlock()
		if naive {
			openMu.Lock()
			mu.Lock()
			for qid := range answers {
				delete(open, "naive-"+qid)
			}
			mu.Unlock()
			openMu.Unlock()
		}
		if got >= n {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // let any duplicate arrive before counting
	mu.Lock()
	defer mu.Unlock()
	hashes := map[string]bool{}
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
		h, _ := a.body["tx_hash"].(string)
		hashes[h] = true
		seenMu.Lock()
		if t, ok := seen[common.HexToHash(h)]; ok {
			run.broadcastLat = append(run.broadcastLat, t.Sub(sent[qid]))
		}
		seenMu.Unlock()
	}
	run.elapsed = last.Sub(start)
	run.distinctTx = len(hashes)
	run.minedOK = countMined(ctx, eth, hashes)
	run.historyEvents = historyEvents(ctx, tc, ids, naive)
	return run
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

func historyEvents(ctx context.Context, tc client.Client, ids []string, naive bool) float64 {
	total, count := 0.0, 0
	for i := 0; i < len(ids) && count < 20; i += max(1, len(ids)/20) {
		id := ids[i]
		switch {
		case naive:
			id = "naive-" + id
		case i%2 == 1:
			id = workflows.PayWorkflowID(id)
		default:
			id = workflows.WithdrawWorkflowID(id)
		}
		d, err := tc.DescribeWorkflowExecution(ctx, id, "")
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

// naiveBlockSignals sends every open naive workflow one signal per new block.
func naiveBlockSignals(ctx context.Context, st *stacktest.Stack, tc client.Client, mu *sync.Mutex, open map[string]bool) {
	ws, err := ethclient.DialContext(ctx, st.ETHWSURL)
	if err != nil {
		return
	}
	defer ws.Close()
	heads := make(chan *typesHeader, 16)
	sub, err := ws.SubscribeNewHead(ctx, heads)
	if err != nil {
		return
	}
	defer sub.Unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-heads:
			mu.Lock()
			targets := make([]string, 0, len(open))
			for id := range open {
				targets = append(targets, id)
			}
			mu.Unlock()
			work := make(chan string)
			var wg sync.WaitGroup
			for w := 0; w < 32; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for id := range work {
						_ = tc.SignalWorkflow(ctx, id, "", signalBlock, h.Number.Uint64())
					}
				}()
			}
			for _, id := range targets {
				work <- id
			}
			close(work)
			wg.Wait()
		}
	}
}

func paymentRows(flat, fixed paymentRun) []result {
	var rows []result
	for _, r := range []paymentRun{flat, fixed} {
		if r.setupError != "" {
			rows = append(rows, result{Name: "payments", Measured: "error", Verdict: "FAIL (correctness)", Note: r.setupError})
		}
	}
	rows = append(rows,
		result{Name: "payments end to end, flat out", Measured: fmt.Sprintf("%.1f payments/s", flat.perSec()),
			Target: "≥ 100/s sustained", Verdict: verdict(flat.perSec() >= 100),
			Note: fmt.Sprintf("n=%d; req→broadcast p50 %s p99 %s; req→response p50 %s p99 %s", flat.n,
				ms(percentile(flat.broadcastLat, .5)), ms(percentile(flat.broadcastLat, .99)),
				ms(percentile(flat.respLat, .5)), ms(percentile(flat.respLat, .99)))},
		result{Name: fmt.Sprintf("request→broadcast p99 at %d/s", fixed.rate), Measured: ms(percentile(fixed.broadcastLat, .99)),
			Target: "≤ 500 ms", Verdict: verdict(len(fixed.broadcastLat) > 0 && percentile(fixed.broadcastLat, .99) <= 500*time.Millisecond),
			Note: fmt.Sprintf("n=%d; p50 %s; req→response p50 %s p99 %s", fixed.n, ms(percentile(fixed.broadcastLat, .5)),
				ms(percentile(fixed.respLat, .5)), ms(percentile(fixed.respLat, .99)))},
		exactlyOnce("payments", flat, fixed),
		result{Name: "Temporal history events per payment", Measured: fmt.Sprintf("%.0f", flat.historyEvents), Target: "(budget)",
			Verdict: "-", Note: "average over a sample of 20 workflows"},
	)
	return rows
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

func naiveRows(naive, flat paymentRun) []result {
	rows := []result{
		{Name: "naive baseline (regular activity per step, signal per block)", Measured: fmt.Sprintf("%.1f payments/s", naive.perSec()),
			Target: "—", Verdict: "-", Note: fmt.Sprintf("n=%d; %.0f history events per payment; req→response p50 %s", naive.n,
				naive.historyEvents, ms(percentile(naive.respLat, .5)))},
		exactlyOnce("naive payments", naive),
	}
	if naive.setupError != "" {
		rows[0].Note = naive.setupError
	}
	if naive.perSec() > 0 && flat.perSec() > 0 {
		rows = append(rows, result{Name: "payflow / naive", Measured: fmt.Sprintf("%.2f×", flat.perSec()/naive.perSec()),
			Target: "> 1", Verdict: verdict(flat.perSec() > naive.perSec())})
	}
	return rows
}
