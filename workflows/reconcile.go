package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
)

// ReconcileScheduleID is the id of the Temporal Schedule that runs Reconcile.
const ReconcileScheduleID = "payflow-reconcile"

// Reconciliation outcomes, as the PayflowStatus search attribute shows them.
const (
	ReconStatusRunning  = "reconciling"
	ReconStatusMatched  = "matched"
	ReconStatusMismatch = "mismatch"
)

// MaxReconBatch is the most wallets one ReconcileWallets activity compares:
// enough to keep the history short, few enough for one activity's timeout.
const MaxReconBatch = 50

// maxReportedMismatches bounds the mismatches a result lists (they are all
// in the reconciliations table; the result only counts the rest).
const maxReportedMismatches = 100

// ReconcileInput starts a reconciliation run.
type ReconcileInput struct {
	// Confirmations: the run compares against the block this far below the
	// head, as deep as the ledger waits before crediting a deposit.
	Confirmations uint64
	// BatchSize is the number of wallets per activity; 0 or more than
	// MaxReconBatch means MaxReconBatch.
	BatchSize int
	// LogsFromBlock is where the search for unmatched transfers of a
	// mismatched wallet starts (e.g. the token's deployment block).
	LogsFromBlock uint64
	// CreditWindow: deposit credits posted this recently are re-verified
	// against the chain first (0 means 24h).
	CreditWindow time.Duration `json:",omitempty"`
	// Progress carries a run across continue-as-new; nil for a new run.
	Progress *ReconcileResult `json:",omitempty"`
	// After is the last address reconciled before continue-as-new.
	After string `json:",omitempty"`
}

// ReconcileResult sums up a run. Every compared (wallet, symbol) is a row of
// the reconciliations table under RunID.
type ReconcileResult struct {
	RunID       string
	BlockNumber uint64
	BlockHash   string
	Wallets     int // addresses compared
	Checked     int // (address, symbol) pairs compared
	Mismatches  int
	// Mismatched lists the first mismatches (at most 100).
	Mismatched []activities.ReconMismatch `json:",omitempty"`
	// CreditsChecked counts the recent deposit credits re-verified; Flagged
	// lists the first 100 whose deposit left the chain (reversed, or spent
	// already) or came back after a reversal. Their wallets are mismatches
	// recorded under CreditsRunID.
	CreditsChecked int                        `json:",omitempty"`
	CreditsRunID   string                     `json:",omitempty"`
	Flagged        []activities.FlaggedCredit `json:",omitempty"`
}

var reconOpts = workflow.ActivityOptions{
	StartToCloseTimeout: 5 * time.Minute, // 50 wallets × symbols of RPC calls, and a log search per mismatch
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
		MaximumInterval: time.Minute},
}

// Reconcile compares every address the ledger answers for with the chain: for
// each (address, configured token) it records the ledger total (available +
// held) against balanceOf at one pinned block, matched or mismatch with the
// difference and the transfers found on one side only (ledger
// RecordReconciliation). Mismatches are logged at WARN by the activity; the
// PayflowStatus search attribute ends as "matched" or "mismatch", and the
// result counts them. Wallets go 50 to an activity and the run continues as
// new when the history grows long, so any number of wallets fits. If the
// pinned block is reorganised away, the run pins a new one and carries on;
// each row names its block.
//
// Before the wallets, the deposit credits of the last CreditWindow are
// re-verified against the chain (activity VerifyCredits): a credit whose
// deposit was reorganised deeper than the confirmations is reversed in the
// ledger, logged at ERROR and recorded as a mismatch of its wallet under
// CreditsRunID; it gets no new protocol status. One already spent cannot be
// reversed and is flagged at every run until an operator settles it.
//
// A transfer in flight can show as a passing mismatch: a withdrawal mined at
// or below the pinned block whose workflow has not settled yet, or a deposit
// confirmed there and not yet credited. The unmatched list names it.
func Reconcile(ctx workflow.Context, in ReconcileInput) (ReconcileResult, error) {
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrFlow.ValueSet("reconcile"), AttrStatus.ValueSet(ReconStatusRunning))
	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
	cctx := workflow.WithActivityOptions(ctx, chainOpts)
	rctx := workflow.WithActivityOptions(ctx, reconOpts)
	logger := workflow.GetLogger(ctx)
	batch := in.BatchSize
	if batch <= 0 || batch > MaxReconBatch {
		batch = MaxReconBatch
	}

	var res ReconcileResult
	if in.Progress != nil {
		res = *in.Progress
	} else {
		var pin activities.PinnedBlock
		if err := workflow.ExecuteActivity(cctx, a.PinBlock, activities.PinInput{Confirmations: in.Confirmations}).
			Get(ctx, &pin); err != nil {
			return res, err
		}
		res = ReconcileResult{RunID: reconRunID(workflow.GetInfo(ctx)), BlockNumber: pin.Number, BlockHash: pin.Hash}
		logger.Info("reconciling", "run_id", res.RunID, "block_number", pin.Number, "block_hash", pin.Hash)
		// Runs scheduled before credits were re-verified replay without it.
		if workflow.GetVersion(ctx, "reconcile-verify-credits", workflow.DefaultVersion, 1) == 1 {
			if err := verifyCredits(ctx, rctx, &res, in, pin); err != nil {
				return res, err
			}
		}
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (ReconcileResult, error) { return res, nil }); err != nil {
		return res, err
	}

	after := in.After
	for {
		var page activities.ReconList
		if err := workflow.ExecuteActivity(lctx, a.ListReconWallets, activities.ReconListInput{After: after, Limit: 500}).
			Get(ctx, &page); err != nil {
			return res, err
		}
		for lo := 0; lo < len(page.Addresses); lo += batch {
			addrs := page.Addresses[lo:min(lo+batch, len(page.Addresses))]
			br, err := reconcileBatch(ctx, rctx, cctx, &res, in, addrs, page.Symbols)
			if err != nil {
				return res, err
			}
			res.Wallets += len(addrs)
			res.Checked += br.Checked
			res.Mismatches += len(br.Mismatches)
			for _, m := range br.Mismatches {
				if len(res.Mismatched) < maxReportedMismatches {
					res.Mismatched = append(res.Mismatched, m)
				}
			}
			after = addrs[len(addrs)-1]
			if workflow.GetInfo(ctx).GetContinueAsNewSuggested() && (lo+batch < len(page.Addresses) || page.Next != "") {
				next := in
				next.Progress, next.After = &res, after
				return res, workflow.NewContinueAsNewError(ctx, Reconcile, next)
			}
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}

	status := ReconStatusMatched
	if res.Mismatches > 0 {
		status = ReconStatusMismatch
		logger.Warn("reconciliation found mismatches", "run_id", res.RunID, "mismatches", res.Mismatches,
			"checked", res.Checked, "block_number", res.BlockNumber)
	} else {
		logger.Info("reconciliation matched", "run_id", res.RunID, "checked", res.Checked, "block_number", res.BlockNumber)
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(status))
	return res, nil
}

// verifyCredits re-verifies the recent deposit credits before the wallets are
// compared, so that a credit reorganised away is reversed (and flagged) rather
// than left as an unexplained difference.
func verifyCredits(ctx, rctx workflow.Context, res *ReconcileResult, in ReconcileInput, pin activities.PinnedBlock) error {
	var a *activities.Activities
	res.CreditsRunID = res.RunID + "/credits"
	if len(res.CreditsRunID) > 128 {
		res.CreditsRunID = "credits/" + workflow.GetInfo(ctx).FirstRunID
	}
	var cr activities.CreditCheckResult
	if err := workflow.ExecuteActivity(rctx, a.VerifyCredits, activities.CreditCheckInput{RunID: res.CreditsRunID,
		Block: pin, Window: in.CreditWindow}).Get(ctx, &cr); err != nil {
		return err
	}
	res.CreditsChecked, res.Flagged = cr.Checked, cr.Flagged[:min(len(cr.Flagged), maxReportedMismatches)]
	res.Mismatches += len(cr.Mismatches)
	for _, m := range cr.Mismatches {
		if len(res.Mismatched) < maxReportedMismatches {
			res.Mismatched = append(res.Mismatched, m)
		}
	}
	if len(cr.Flagged) > 0 {
		workflow.GetLogger(ctx).Error("deposit credits no longer on chain", "run_id", res.CreditsRunID,
			"flagged", len(cr.Flagged), "checked", cr.Checked)
	}
	return nil
}

// reconcileBatch runs one ReconcileWallets activity, pinning a new block (and
// keeping it for the rest of the run) if the pinned one was reorganised away.
func reconcileBatch(ctx, rctx, cctx workflow.Context, res *ReconcileResult, in ReconcileInput, addrs, symbols []string) (activities.ReconBatchResult, error) {
	var a *activities.Activities
	for attempt := 0; ; attempt++ {
		var br activities.ReconBatchResult
		err := workflow.ExecuteActivity(rctx, a.ReconcileWallets, activities.ReconBatchInput{RunID: res.RunID,
			Block:     activities.PinnedBlock{Number: res.BlockNumber, Hash: res.BlockHash},
			Addresses: addrs, Symbols: symbols, LogsFromBlock: in.LogsFromBlock}).Get(ctx, &br)
		var appErr *temporal.ApplicationError
		if err == nil || attempt >= 3 || !errors.As(err, &appErr) || appErr.Type() != activities.ErrTypePinReorged {
			return br, err
		}
		var pin activities.PinnedBlock
		if err := workflow.ExecuteActivity(cctx, a.PinBlock, activities.PinInput{Confirmations: in.Confirmations}).
			Get(ctx, &pin); err != nil {
			return br, err
		}
		workflow.GetLogger(ctx).Warn("pinned block reorganised away; pinned again", "run_id", res.RunID,
			"old_block_hash", res.BlockHash, "block_number", pin.Number, "block_hash", pin.Hash)
		res.BlockNumber, res.BlockHash = pin.Number, pin.Hash
	}
}

// reconRunID names a run in the reconciliations table: the workflow id (a
// scheduled run's id carries its time) and the first run id, which survives
// continue-as-new and tells apart two runs under a reused workflow id.
func reconRunID(info *workflow.Info) string {
	id := fmt.Sprintf("%s/%s", info.WorkflowExecution.ID, info.FirstRunID)
	if len(id) > 128 {
		return info.FirstRunID
	}
	return id
}
