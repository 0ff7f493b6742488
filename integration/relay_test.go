package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"payflow/answers"
	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/workflows"
)

// devRelay is the worker's relay timing: .dev/config.json's answer_relay,
// else the defaults.
func devRelay(t *testing.T) config.RelayConfig {
	t.Helper()
	cfg := struct {
		AnswerRelay config.RelayConfig `json:"answer_relay"`
	}{config.Default().AnswerRelay}
	b, err := os.ReadFile(filepath.Join(repoRoot(t), ".dev", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("reading answer_relay from .dev/config.json: %v", err)
	}
	return cfg.AnswerRelay
}

// refuseAnswers makes the broker refuse (nack) every message published to
// q's routing key, and deliver none: q itself is unbound, and the only queue
// bound to the key takes no message and rejects the publish. accept undoes
// both (binding q again before the blocker goes, so that nothing published
// in between is lost); the test's cleanup does too if it was not called.
func refuseAnswers(t *testing.T, st *stacktest.Stack, q config.QueueConfig) (accept func()) {
	t.Helper()
	conn, err := amqp.Dial(st.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	blocker, err := ch.QueueDeclare("", false, true, true, false,
		amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(blocker.Name, q.RoutingKey(), q.Exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueUnbind(q.Queue, q.RoutingKey(), q.Exchange, nil); err != nil {
		t.Fatal(err)
	}
	accepted := false
	accept = func() {
		if accepted {
			return
		}
		accepted = true
		if err := ch.QueueBind(q.Queue, q.RoutingKey(), q.Exchange, false, nil); err != nil {
			t.Errorf("binding %s again: %v", q.Queue, err)
		}
		if _, err := ch.QueueDelete(blocker.Name, false, false, false); err != nil {
			t.Errorf("deleting the blocking queue: %v", err)
		}
	}
	t.Cleanup(accept)
	return accept
}

// runStopsRetrying is how long a terminated run's worker may still retry a
// local activity: a few workflow task timeouts.
const runStopsRetrying = 10 * time.Second

// TestRelayPublishesAnswerOfTerminatedRun: a withdraw records its answer
// but the broker refuses to take it, so the run keeps retrying its publish
// until an operator terminates it. Nothing in the run will ever publish that
// answer; once the broker takes messages again, the worker's relay does, after
// the grace period: the business system gets it exactly once, with the
// answer's message id, and the outbox marks it published.
func TestRelayPublishesAnswerOfTerminatedRun(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	tc := st.Temporal(t)
	ctx := context.Background()
	relay := devRelay(t)
	workers := workerMetrics(t, st)
	relayed := `payflow_answers_relayed_total{flow="withdraw"}`
	before := scrapeSum(t, workers)[relayed]

	accept := refuseAnswers(t, st, config.Default().RMQ.WithdrawResp)
	qid := stacktest.RandomID("it-relay-")
	wfID := workflows.WithdrawWorkflowID(qid)
	st.Publish(t, withdrawKey, withdrawBody(qid, walletByLabel(t, db, "user-1"), stacktest.RandomAddress(), "0.5"), true)

	out := answers.New(db, nil, nil)
	var rec answers.Recorded
	waitFor(t, workflowWait, "the answer of "+wfID+" to be recorded", func() bool {
		r, ok, err := out.Get(ctx, workflows.AnswerID(wfID))
		if err != nil {
			t.Fatal(err)
		}
		rec = r
		return ok
	})
	if rec.Published() {
		t.Fatalf("%s published while the broker refuses it", rec.MessageID)
	}
	// The run is alive, its publish retried on the broker's refusals: an
	// operator gives up on it.
	if err := tc.TerminateWorkflow(ctx, wfID, "", "integration test: a run stopped between recording and publishing its answer"); err != nil {
		t.Fatalf("terminating %s (it should be retrying its publish): %v", wfID, err)
	}
	// The worker learns of the termination at the run's next workflow task
	// heartbeat (within the 3 s workflow task timeout) and only then stops
	// retrying its publish: a retry before that would still publish the
	// answer once the broker takes it. No event says when it stopped.
	time.Sleep(runStopsRetrying)
	resp := st.Collect(t, withdrawResp, "queue_id")
	accept()

	got := resp.Wait(t, qid, 1, relay.Grace.Duration+3*relay.Interval.Duration+time.Minute)[0]
	if status(got) != "1" || got.MessageID != workflows.AnswerID(wfID) {
		t.Errorf("relayed answer: %s (message id %s)", got.Raw, got.MessageID)
	}
	after, _, err := out.Get(ctx, workflows.AnswerID(wfID))
	if err != nil {
		t.Fatal(err)
	}
	if !after.Published() {
		t.Fatalf("%s arrived and is not marked published", after.MessageID)
	}
	if waited := after.PublishedAt.Sub(after.RecordedAt); waited < relay.Grace.Duration {
		t.Errorf("published %s after it was recorded, within the relay's grace period %s: not by the relay",
			waited, relay.Grace.Duration)
	}
	waitFor(t, 30*time.Second, relayed+" to count it", func() bool { return scrapeSum(t, workers)[relayed] >= before+1 })
	time.Sleep(quietInterval + relay.Interval.Duration)
	if n := len(resp.Get(qid)); n != 1 {
		t.Errorf("%d answers for %s, want exactly 1", n, qid)
	}
}
