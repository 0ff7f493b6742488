package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/chain"
	"payflow/intake"
	"payflow/internal/stacktest"
	"payflow/protocol"
	"payflow/workflows"
)

// The Temporal floor: what Temporal alone costs per payment on
// this machine. FloorPayment has a payment's Temporal footprint and does
// nothing else: started as the starter starts a payment (the same options,
// search attributes, memo and summary), a first workflow task of three
// local activities (begin, sign, broadcast), the `confirming` upsert and the
// replacement timer; then the tracker's confirmation signal and a second
// task that cancels the timer, runs three local activities (inspect, decide,
// publish) with the final status upsert, and completes — the 19 history
// events of a payment. Its steps touch no database, chain or broker. Run
// flat out on the same stack, it gives the highest payments/s that any work
// on payflow's side could reach with this Temporal deployment, and the
// Temporal CPU a payment cannot go below.
const (
	floorTaskQueue    = "payflow-bench-floor"
	floorWorkflowName = "FloorPayment"
	// floorTxHash is the hash every FloorPayment "broadcasts" and is
	// signalled about.
	floorTxHash = "0xabababababababababababababababababababababababababababababababab"
)

// floorSteps are FloorPayment's no-op local activities. The broadcast step
// hands the workflow to the bench's signallers (as the tracker would after
// the confirmations), the publish step counts the payment answered.
type floorSteps struct {
	broadcast chan string
	published chan string
}

// Step does nothing but tell the bench about broadcast and publish.
func (f *floorSteps) Step(_ context.Context, workflowID, step string) error {
	switch step {
	case "broadcast":
		f.broadcast <- workflowID
	case "publish":
		f.published <- workflowID
	}
	return nil
}

// floorRun is the workflow side of one floor run: FloorPayment's steps.
var floorRun = &floorSteps{}

// floorInput starts a FloorPayment: a payment's input (the same payload),
// and Bare for the least any design with a confirmation signal does.
type floorInput struct {
	workflows.PaymentInput
	// Bare: a local activity (the broadcast), the signal, a local activity
	// (the answer) and the result — no other step, no upsert, no timer.
	Bare bool
}

// FloorPayment: see the top of this file.
func FloorPayment(ctx workflow.Context, in floorInput) (protocol.PaymentResponse, error) {
	r := in.Request
	resp := protocol.PaymentResponse{QueueID: r.QueueID, Status: protocol.StatusSucceeded, Amount: r.Amount,
		Chain: r.Chain, Symbol: r.Symbol, FromAddress: r.FromAddress, ToAddress: r.ToAddress}
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 30 * time.Second})
	steps := func(names ...string) error {
		for _, name := range names {
			if in.Bare && name != "broadcast" && name != "publish" {
				continue
			}
			if err := workflow.ExecuteLocalActivity(lctx, floorRun.Step, id, name).Get(ctx, nil); err != nil {
				return err
			}
		}
		return nil
	}
	if err := steps("begin", "sign", "broadcast"); err != nil {
		return resp, err
	}
	resp.TxHash = floorTxHash
	signal := workflow.GetSignalChannel(ctx, workflows.SignalTxEvent)
	var ev workflows.TxEvent
	if in.Bare {
		signal.Receive(ctx, &ev)
		return resp, steps("publish")
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, workflows.AttrStatus.ValueSet(workflows.StepConfirming),
		workflows.AttrTxHash.ValueSet(resp.TxHash))
	tctx, cancel := workflow.WithCancel(ctx)
	timer := workflow.NewTimer(tctx, 30*time.Minute)
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(signal, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &ev) })
	sel.AddFuture(timer, func(workflow.Future) {})
	sel.Select(ctx)
	cancel()
	if err := steps("inspect", "decide"); err != nil {
		return resp, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, workflows.AttrStatus.ValueSet(workflows.StepSucceeded))
	return resp, steps("publish")
}

// floorFigures is one floor run: its row, payments/s, CPU per payment (all
// processes, and by process), Temporal's persistence requests and what
// payflow's idle processes asked of MariaDB and the nodes meanwhile.
type floorFigures struct {
	row         result
	rate        float64
	cpu         string
	cpuMs       float64
	cpuBy       map[string]float64
	persistence persistenceDelta
	calls       callDelta
	answered    int
}

// benchFloor runs n FloorPayments flat out (bare: the least design) and
// returns its figures: startCallers start them as the starter
// does, signalCallers signal each once it has broadcast, and this process's
// worker (payflow's worker options) runs them.
func benchFloor(ctx context.Context, st *stacktest.Stack, n int, bare bool) floorFigures {
	const startCallers, signalCallers = 32, 16
	name := "Temporal floor: payflow's 19 history events with no-op steps, flat out"
	if bare {
		name = "Temporal floor, bare: start, a local activity, the signal, a local activity, flat out"
	}
	fail := func(err error) floorFigures {
		return floorFigures{row: result{Name: name, Measured: "error", Verdict: "-", Note: err.Error()}}
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
	floorRun.broadcast, floorRun.published = make(chan string, n), make(chan string, n)
	// A task queue per run: a bare run's worker never gets the other's tasks.
	queue := floorTaskQueue + "-" + stacktest.RandomID("")
	w := worker.New(tc, queue, workflows.WorkerOptions())
	w.RegisterWorkflowWithOptions(FloorPayment, workflow.RegisterOptions{Name: floorWorkflowName})
	if err := w.Start(); err != nil {
		return fail(err)
	}
	defer w.Stop()

	run := stacktest.RandomID("")
	var startErrs, signalErrs atomic.Int64
	var firstErr atomic.Value
	probe := startPersistenceProbe(ctx)
	callsProbe := startCallProbe(ctx, st)
	cpu0 := cpuSeconds()
	t0 := time.Now()
	for c := 0; c < signalCallers; c++ {
		go func() {
			for id := range floorRun.broadcast {
				ev := workflows.TxEvent{TxHash: floorTxHash, Milestone: chain.MilestoneConfirmed}
				if err := tc.SignalWorkflow(ctx, id, "", activities.SignalTxEvent, ev); err != nil {
					signalErrs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	fanOut(startCallers, n, func(i int) {
		if err := startFloor(ctx, tc, queue, floorQueueID(run, i), bare); err != nil {
			startErrs.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}
	})
	done := map[string]bool{}
	want := n - int(startErrs.Load())
	timeout := time.After(10 * time.Minute)
wait:
	for len(done) < want {
		select {
		case id := <-floorRun.published:
			done[id] = true
		case <-timeout:
			break wait
		}
	}
	took := time.Since(t0)
	close(floorRun.broadcast)
	answered := len(done)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = intake.PaymentWorkflowID(protocol.FlowWithdraw, floorQueueID(run, i+1))
	}
	// A run cut short leaves no workflow behind: once this process's worker
	// stops, nothing would ever run them.
	for _, id := range ids {
		if answered < n && !done[id] {
			_ = tc.TerminateWorkflow(ctx, id, "", "the floor bench gave up on it")
		}
	}
	cpu1 := cpuSeconds()
	cpu, cpuMs := cpuSplit(cpu0, cpu1, max(answered, 1), "payment")
	persist := probe.done(ctx)
	calls := callsProbe.done(ctx)
	rate := float64(answered) / took.Seconds()
	note := fmt.Sprintf("n=%d answered in %s; %.0f history events per workflow; %s; %s Temporal persistence requests; "+
		"the most payments/s this Temporal deployment allows whatever payflow's steps cost (bench = the workflow worker "+
		"and the callers)", answered, took.Round(time.Millisecond), historyLength(ctx, tc, ids), cpu,
		persist.measured(max(answered, 1)))
	if answered < n {
		note += fmt.Sprintf("; %d not answered (%d start and %d signal errors, first: %v)", n-answered,
			startErrs.Load(), signalErrs.Load(), firstErr.Load())
	}
	return floorFigures{row: result{Name: name, Measured: fmt.Sprintf("%.1f payments/s", rate), Target: "—", Verdict: "-", Note: note},
		rate: rate, cpu: cpu, cpuMs: cpuMs, cpuBy: cpuPer(cpu0, cpu1, max(answered, 1)), persistence: persist, calls: calls,
		answered: answered}
}

// floorRows set payflow's flat-out run beside the floor's of the same
// invocation: payments/s (payflow ≥ 0.9× the floor), CPU per payment by
// process, payflow's own requests and Temporal's persistence requests.
func floorRows(flat paymentRun, f floorFigures, namespace string) []result {
	if flat.n == 0 || f.rate <= 0 {
		return nil
	}
	ratio := flat.perSec() / f.rate
	rows := []result{{Name: "payflow / Temporal floor", Measured: fmt.Sprintf("%.2f× (%.1f / %.1f)", ratio, flat.perSec(), f.rate),
		Target: "≥ 0.9×", Verdict: verdict(ratio >= 0.9),
		Note: "payments/s flat out, same invocation: payflow's payments against payflow's 19 history events with no-op steps"}}
	if flat.cpuMs > 0 && f.cpuMs > 0 {
		pOut, fOut := outsideTemporal(flat.cpuBy), outsideTemporal(f.cpuBy)
		rows = append(rows, result{Name: "CPU ms per payment, payflow / Temporal floor",
			Measured: fmt.Sprintf("%.1f / %.1f (%.2f×)", flat.cpuMs, f.cpuMs, flat.cpuMs/f.cpuMs), Target: "—", Verdict: "-",
			Note: fmt.Sprintf("outside Temporal %.1f / %.1f; payflow: %s; floor: %s (the floor's bench is its workflow worker)",
				pOut, fOut, flat.cpu, f.cpu)})
	}
	fn := max(f.answered, 1)
	rows = append(rows, result{Name: "payflow's own requests per payment, payflow / Temporal floor",
		Measured: fmt.Sprintf("%.1f / %.1f SQL, %.1f / %.1f RPC", flat.calls.sum("sql")/float64(max(flat.n, 1)), f.calls.sum("sql")/float64(fn),
			flat.calls.sum("rpc")/float64(max(flat.n, 1)), f.calls.sum("rpc")/float64(fn)), Target: "(budget)", Verdict: "-",
		Note: fmt.Sprintf("payflow: %s; during the floor (payflow's processes idle: its background per floor payment): %s; "+
			"Temporal persistence requests per payment %.1f / %.1f", flat.calls.perPayment(flat.n), f.calls.perPayment(fn),
			flat.persistence.perPayment(flat.n), f.persistence.perPayment(fn))},
		result{Name: "Temporal frontend RPCs per payment, payflow / Temporal floor", Measured: "-", Target: "(budget)", Verdict: "-",
			Note: fmt.Sprintf("payflow: %s; floor: %s; from the dev server's /metrics (service_requests), whole batch, every client's",
				flat.persistence.frontend(flat.n), f.persistence.frontend(fn))},
		result{Name: "Temporal persistence requests per payment, payflow / Temporal floor",
			Measured: fmt.Sprintf("%.1f / %.1f", flat.persistence.perPayment(flat.n), f.persistence.perPayment(fn)), Target: "(budget)", Verdict: "-",
			Note: fmt.Sprintf("payflow: %s; floor: %s", flat.persistence.split(namespace, flat.n), f.persistence.split(namespace, fn))})
	return rows
}

// floorQueueID is the queue_id of a floor run's i-th payment.
func floorQueueID(run string, i int) string { return fmt.Sprintf("floor-%s-%d", run, i) }

// startFloor starts one FloorPayment as the starter starts a payment
// (intake.PaymentStartOptions), on queue.
func startFloor(ctx context.Context, tc client.Client, queue, queueID string, bare bool) error {
	req := protocol.PaymentRequest{QueueID: queueID, FromAddress: stacktest.RandomAddress(),
		ToAddress: stacktest.RandomAddress(), Amount: protocol.MustAmount("0.01"), Chain: "ETH", Symbol: "USDT",
		Timestamp: time.Now().Unix()}
	in := workflows.PaymentInput{Request: req, ConfirmTimeout: 30 * time.Minute}
	opts := intake.PaymentStartOptions(protocol.FlowWithdraw, in, queue, true, req.Digest())
	_, err := tc.ExecuteWorkflow(ctx, opts, floorWorkflowName, floorInput{PaymentInput: in, Bare: bare})
	return err
}
