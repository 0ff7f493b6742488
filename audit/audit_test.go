package audit_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"payflow/audit"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

func trail(t *testing.T) (*audit.Log, *sql.DB) {
	db := stacktest.TestDB(t, "audit")
	require.NoError(t, ledger.Migrate(context.Background(), db))
	return audit.New(db), db
}

func TestRecordsAndListsByPayment(t *testing.T) {
	ctx := context.Background()
	l, _ := trail(t)
	first, err := l.Record(ctx, audit.Entry{Actor: "alice", Action: audit.ActionApprove, Subject: "withdraw/q1",
		Payment: "withdraw/q1", Reason: "customer verified", Changes: audit.Changes(map[string]string{"approval": "granted"})})
	require.NoError(t, err)
	require.NotZero(t, first.ID)
	require.Equal(t, audit.SourceCLI, first.Source)
	require.Equal(t, audit.OutcomeDone, first.Outcome)
	require.False(t, first.At.IsZero())
	_, err = l.Record(ctx, audit.Entry{Actor: "bob", Action: audit.ActionDenyListChange, Subject: "deny.txt", Reason: "OFAC update"})
	require.NoError(t, err)

	got, err := l.List(ctx, audit.Filter{Payment: "withdraw/q1"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "alice", got[0].Actor)
	require.Equal(t, "customer verified", got[0].Reason)
	require.JSONEq(t, `{"approval":"granted"}`, string(got[0].Changes))

	all, err := l.List(ctx, audit.Filter{})
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, "bob", all[0].Actor, "newest first")
}

func TestRefusesARecordWithoutWhoOrWhy(t *testing.T) {
	ctx := context.Background()
	l, _ := trail(t)
	_, err := l.Record(ctx, audit.Entry{Actor: "alice", Action: audit.ActionRelease, Subject: "s", Reason: "  "})
	require.ErrorIs(t, err, audit.ErrNoReason)
	_, err = l.Record(ctx, audit.Entry{Action: audit.ActionRelease, Subject: "s", Reason: "r"})
	require.ErrorIs(t, err, audit.ErrNoActor)
}

func TestKeyedRecordIsWrittenOnce(t *testing.T) {
	ctx := context.Background()
	l, _ := trail(t)
	e := audit.Entry{Actor: "webui-user", Source: audit.SourceTemporal, Action: audit.ActionApprove, Subject: "pay/q2",
		Payment: "pay/q2", Reason: "ok", Key: "pay/q2/approval/1"}
	a, err := l.Record(ctx, e)
	require.NoError(t, err)
	e.Reason = "replayed"
	b, err := l.Record(ctx, e)
	require.NoError(t, err)
	require.Equal(t, a.ID, b.ID)
	require.Equal(t, "ok", b.Reason, "the first record stands")
	all, err := l.List(ctx, audit.Filter{Payment: "pay/q2"})
	require.NoError(t, err)
	require.Len(t, all, 1)
}

func TestRecordsCannotBeChangedOrDeleted(t *testing.T) {
	ctx := context.Background()
	l, db := trail(t)
	e, err := l.Record(ctx, audit.Entry{Actor: "alice", Action: audit.ActionReject, Subject: "s", Reason: "r"})
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "UPDATE operator_audit SET actor='mallory' WHERE id=?", e.ID)
	require.ErrorContains(t, err, "append-only")
	_, err = db.ExecContext(ctx, "DELETE FROM operator_audit WHERE id=?", e.ID)
	require.ErrorContains(t, err, "append-only")
}

// TestApprovedNeedsTheWorkflowsOwnRecord: only an approval the payment's
// workflow recorded (source temporal) counts; payflowctl's own record of
// the command, a rejection, or another payment's approval do not.
func TestApprovedNeedsTheWorkflowsOwnRecord(t *testing.T) {
	ctx := context.Background()
	l, _ := trail(t)
	approved := func(p string) bool {
		t.Helper()
		ok, err := l.Approved(ctx, p)
		require.NoError(t, err)
		return ok
	}
	require.False(t, approved("withdraw-q3"))
	_, err := l.Record(ctx, audit.Entry{Actor: "alice", Source: audit.SourceCLI, Action: audit.ActionApprove, Subject: "withdraw-q3",
		Payment: "withdraw-q3", Reason: "ok"})
	require.NoError(t, err)
	_, err = l.Record(ctx, audit.Entry{Actor: "bob", Source: audit.SourceTemporal, Action: audit.ActionReject, Subject: "withdraw-q3",
		Payment: "withdraw-q3", Reason: "no"})
	require.NoError(t, err)
	_, err = l.Record(ctx, audit.Entry{Actor: "carol", Source: audit.SourceTemporal, Action: audit.ActionApprove, Subject: "withdraw-q4",
		Payment: "withdraw-q4", Reason: "ok"})
	require.NoError(t, err)
	require.False(t, approved("withdraw-q3"))
	require.True(t, approved("withdraw-q4"))
	require.False(t, approved(""))
}
