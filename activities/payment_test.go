package activities_test

import (
	"errors"
	"math/big"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"payflow/activities"
	"payflow/chain/evm/send"
	"payflow/internal/stacktest"
)

// TestBroadcastDatabaseErrorIsRetried: a dropped database
// connection while Broadcast reads the stored transaction is a transient
// error, retried; before, it became a non-retryable failure, and the
// workflow released the reservation and answered status=0 for a transfer
// that an earlier attempt may already have sent.
func TestBroadcastDatabaseErrorIsRetried(t *testing.T) {
	db := stacktest.TestDB(t, "bcast")
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: "ETH", ChainID: big.NewInt(1337),
		MaxFeeWei: big.NewInt(1e12)}, db, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close() // the connection is gone
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	acts := &activities.Activities{Chain: "ETH", DB: db}
	useFamily(t, acts, db, nil, bc)
	env.RegisterActivity(acts)
	_, err = env.ExecuteActivity(acts.Broadcast, activities.BroadcastInput{WorkflowID: "withdraw-q", Step: "transfer"})
	if err == nil {
		t.Fatal("no error from a closed database")
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.NonRetryable() {
		t.Fatalf("a database error is non-retryable: %v", err)
	}
}
