package activities

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"

	"payflow/internal/sqlrows"
)

// FailingAfter is the attempt from which a step retried on an error is
// recorded as failing: about 8 s into the local activities' backoff
// (0.5 s doubling), past a blip, well before anyone would call it stuck.
const FailingAfter = 5

// FailingSteps makes a step that keeps failing visible. payflow retries every
// error that is not a refusal of the request (a node that does not answer,
// a database outage) without end, so a payment never fails on a transient
// error; but an error that does not go away must not look like progress. The
// worker's activities pass through its interceptor: from attempt
// FailingAfter on, a step's error is recorded in failing_steps with the
// activity, the attempt count and the error's words (for operators: never
// sent to the business); the row goes when the step gets past it. The
// metrics sampler counts the rows still retried (payflow_failing_steps,
// alerted on), and `payflowctl payment show` prints them.
type FailingSteps struct {
	DB    *sql.DB
	Chain string
	Log   *slog.Logger
}

// Interceptor returns the worker interceptor that records failing steps of
// the worker's activities, local ones included.
func (f *FailingSteps) Interceptor() interceptor.WorkerInterceptor { return &failingWorker{f: f} }

type failingWorker struct {
	interceptor.WorkerInterceptorBase
	f *FailingSteps
}

func (w *failingWorker) InterceptActivity(ctx context.Context,
	next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &failingActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, f: w.f}
}

type failingActivity struct {
	interceptor.ActivityInboundInterceptorBase
	f *FailingSteps
}

func (a *failingActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := a.Next.ExecuteActivity(ctx, in)
	info := activity.GetInfo(ctx)
	// Below the threshold nothing was recorded and nothing is written: the
	// common path costs no statement.
	if info.Attempt >= FailingAfter && ctx.Err() == nil {
		if werr := a.f.observe(ctx, info.WorkflowExecution.ID, info.ActivityType.Name, info.Attempt, err); werr != nil {
			a.f.logger().Warn("recording a failing step", "workflow_id", info.WorkflowExecution.ID, "err", werr)
		}
	}
	return res, err
}

func (f *FailingSteps) logger() *slog.Logger {
	if f.Log == nil {
		return slog.Default()
	}
	return f.Log
}

// observe records err as the step's failure, or clears the record when the
// step succeeded or ended for good (a refusal is an answer, not a failure).
func (f *FailingSteps) observe(ctx context.Context, workflowID, activityName string, attempt int32, err error) error {
	var appErr *temporal.ApplicationError
	if err == nil || (errors.As(err, &appErr) && appErr.NonRetryable()) {
		_, derr := f.DB.ExecContext(ctx, "DELETE FROM failing_steps WHERE workflow_id=?", workflowID)
		return derr
	}
	f.logger().Warn("step keeps failing; retried", "workflow_id", workflowID, "activity", activityName, "attempt", attempt,
		"err", err)
	_, werr := f.DB.ExecContext(ctx, `INSERT INTO failing_steps (workflow_id, chain, activity, error, attempts)
		VALUES (?,?,?,?,?) ON DUPLICATE KEY UPDATE activity=VALUES(activity), error=VALUES(error), attempts=VALUES(attempts),
		last_at=CURRENT_TIMESTAMP(6), first_at=IF(activity=VALUES(activity), first_at, CURRENT_TIMESTAMP(6))`,
		workflowID, f.Chain, activityName, clip(err.Error(), 1000), attempt)
	return werr
}

// FailingStep is a step recorded as failing.
type FailingStep struct {
	Activity string
	Error    string
	Attempts int
	First    string // when the step was first recorded failing (UTC)
	Last     string // its latest failure (UTC)
}

// FailingStepOf returns the failing step recorded for workflowID, if any.
func FailingStepOf(ctx context.Context, db *sql.DB, workflowID string) (*FailingStep, error) {
	var s FailingStep
	err := db.QueryRowContext(ctx, `SELECT activity, error, attempts, DATE_FORMAT(first_at, '%Y-%m-%d %H:%i:%s'),
		DATE_FORMAT(last_at, '%Y-%m-%d %H:%i:%s') FROM failing_steps WHERE workflow_id=?`, workflowID).
		Scan(&s.Activity, &s.Error, &s.Attempts, &s.First, &s.Last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the failing step of %s: %w", workflowID, err)
	}
	return &s, nil
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// FailingNow lists the workflows whose step failed on a retried error
// within the last 2 minutes (what payflow_failing_steps counts), oldest
// first, at most limit.
func FailingNow(ctx context.Context, db *sql.DB, limit int) ([]string, error) {
	ids, err := sqlrows.Collect(ctx, db, sqlrows.String, `SELECT workflow_id FROM failing_steps
		WHERE last_at > CURRENT_TIMESTAMP(6) - INTERVAL 2 MINUTE ORDER BY first_at LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing failing steps: %w", err)
	}
	return ids, nil
}

// FailingCount counts chain's workflows whose step failed on a retried
// error within the last 2 minutes: the payflow_failing_steps gauge.
func FailingCount(ctx context.Context, db *sql.DB, chain string) (int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM failing_steps
		WHERE chain = ? AND last_at > CURRENT_TIMESTAMP(6) - INTERVAL 2 MINUTE`, chain).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting failing steps: %w", err)
	}
	return n, nil
}
