package activities

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"payflow/internal/stacktest"
	"payflow/ledger"
)

// TestFailingStepIsRecordedAndCleared: a step failing on a retried error is
// recorded with its words and attempt count; a refusal (an answer) or a
// success clears it. Before, a step retried for ever showed nothing but
// "signing … nothing signed".
func TestFailingStepIsRecordedAndCleared(t *testing.T) {
	ctx := context.Background()
	db := stacktest.TestDB(t, "failing")
	require.NoError(t, ledger.Migrate(ctx, db))
	f := &FailingSteps{DB: db, Chain: "ETH"}
	wf := "withdraw-failing-1"
	require.NoError(t, f.observe(ctx, wf, "SignTransfer", 5, errors.New("reading code at 0xab: connection refused")))
	require.NoError(t, f.observe(ctx, wf, "SignTransfer", 6, errors.New("reading code at 0xab: i/o timeout")))
	s, err := FailingStepOf(ctx, db, wf)
	require.NoError(t, err)
	require.NotNil(t, s)
	require.Equal(t, "SignTransfer", s.Activity)
	require.Equal(t, 6, s.Attempts)
	require.Contains(t, s.Error, "i/o timeout")

	// A refusal is the payment's answer, not a failure of the step.
	require.NoError(t, f.observe(ctx, wf, "SignTransfer", 7,
		temporal.NewNonRetryableApplicationError("refused", ErrTypeRefusedByChain, nil)))
	s, err = FailingStepOf(ctx, db, wf)
	require.NoError(t, err)
	require.Nil(t, s)

	require.NoError(t, f.observe(ctx, wf, "Broadcast", 5, errors.New("dial tcp: connection refused")))
	require.NoError(t, f.observe(ctx, wf, "Broadcast", 8, nil))
	s, err = FailingStepOf(ctx, db, wf)
	require.NoError(t, err)
	require.Nil(t, s)
}
