package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/chain"
	"payflow/protocol"
)

// SignalUnwatch ends a Topup watch.
const SignalUnwatch = "unwatch"

// TopupWorkflowID is the id of the watch of an address: a second topup for
// the same address starts nothing.
func TopupWorkflowID(chain, address string) string {
	spec, _ := FlowOf(protocol.FlowTopup)
	return spec.WorkflowID(TopupKey(chain, address))
}

// TopupKey is the key of a topup request (see FlowSpec.WorkflowID).
func TopupKey(chain, address string) string { return chain + "-" + strings.ToLower(address) }

// DepositWorkflowID identifies one deposit log (log index within its tx).
func DepositWorkflowID(chain, txHash string, logIndex uint) string {
	return fmt.Sprintf("deposit-%s-%s-%d", chain, strings.ToLower(txHash), logIndex)
}

// TopupInput starts the watch of an address.
type TopupInput struct {
	Chain   string
	Symbol  string
	Address string
}

// Topup registers the address with the chain listener and stays open as the
// address's watch, visible in the Web UI, until an "unwatch" signal. Its
// history stays a handful of events, and it continues as new when Temporal
// suggests it.
func Topup(ctx workflow.Context, in TopupInput) error {
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrFlow.ValueSet(string(protocol.FlowTopup)),
		AttrAddress.ValueSet(in.Address), AttrStatus.ValueSet("watching"))
	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
	var res activities.WatchResult
	if err := workflow.ExecuteActivity(lctx, a.RegisterWatch, activities.WatchInput{Chain: in.Chain, Symbol: in.Symbol,
		Address: in.Address}).Get(ctx, &res); err != nil {
		return err
	}
	status := fmt.Sprintf("watching %s for %s deposits from block %d", in.Address, in.Symbol, res.FromBlock)
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (string, error) { return status, nil }); err != nil {
		return err
	}
	workflow.GetLogger(ctx).Info("watching address", "address", in.Address, "from_block", res.FromBlock)
	unwatch := workflow.GetSignalChannel(ctx, SignalUnwatch)
	for {
		timedOut := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(unwatch, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		sel.AddFuture(workflow.NewTimer(ctx, 24*time.Hour), func(workflow.Future) { timedOut = true })
		sel.Select(ctx)
		if !timedOut {
			_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet("unwatched"))
			return nil // the listener keeps matching; unwatching the chain side is an operator's SQL for now
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return workflow.NewContinueAsNewError(ctx, Topup, in)
		}
	}
}

// ErrTypeDepositNotIncluded is the type of the non-retryable error a Deposit
// fails with after it answered status=0 (reorganised away and not re-included
// in time). Failing, rather than completing, is what lets the listener start
// the same workflow id again (WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY)
// if the deposit is mined again later; a credited deposit completes and can
// never start again. The error's details hold the published TopupResponse.
const ErrTypeDepositNotIncluded = "DepositNotIncluded"

// SignalDepositDelivered carries a DepositDelivery: the listener delivered the
// deposit (again). A Deposit reads it only when it answers status=0: a
// delivery since its last check means the deposit was mined again meanwhile.
const SignalDepositDelivered = "deposit-delivered"

// DepositDelivery is the block the listener delivered a deposit from.
type DepositDelivery struct {
	BlockHash   string
	BlockNumber uint64
}

// depositInclusionVersion marks Deposits that arm the re-inclusion deadline
// from the start, verify absence before answering status=0, fail after
// status=0, and key their messages by the inclusion's block hash.
const depositInclusionVersion = "deposit-inclusion"

// DepositInput describes one deposit log to a watched address.
type DepositInput struct {
	Chain       string
	Symbol      string
	Token       string
	Address     string // the watched recipient
	From        string
	TxHash      string
	LogIndex    uint // position within the transaction's receipt
	Units       string
	Amount      protocol.Amount
	BlockNumber uint64
	// BlockHash is the block the listener saw the deposit in. It keys the
	// deposit's status=2 and status=0 messages: a reset or a retry publishes
	// the same ids again (and so nothing new), while a deposit mined again
	// after its status=0 is delivered from another block and announced
	// afresh. Empty from starters that predate it (then ids are unkeyed).
	BlockHash string `json:",omitempty"`
	// ReincludeTimeout: how long a deposit may be out of the chain (reorganised
	// away, or orphaned before the tracker first saw it) before status=0.
	ReincludeTimeout time.Duration
	// Silent books the deposit without announcing it: a transfer into a
	// managed wallet that no topup watches, a dust deposit to one,
	// or a sweep's gas top-up. It is followed and credited exactly as an
	// announced one, under the same deposit key, and publishes nothing. The
	// zero value announces, as every Deposit started before it did.
	Silent bool `json:",omitempty"`
}

// Deposit announces one deposit twice: status=2 when seen, then status=1 once
// it has the configured confirmations (crediting the ledger once), or status=0
// if it is reorganised away and not re-included in time. The deadline runs
// from the start until the tracker reports the deposit in a block (the block
// the listener saw may be orphaned before the tracker looks), and again from
// each "reorged"; when it passes, VerifyDeposit must show the deposit absent
// before status=0 is answered. After status=0 the workflow fails with
// ErrTypeDepositNotIncluded, so a later re-inclusion starts it again; if the
// listener delivered the deposit while that answer was being checked and
// published (SignalDepositDelivered), the listener will not deliver it again,
// so the workflow continues as new from the new block instead.
// Messages are keyed wfID/seen/<block hash>, wfID/final/<block hash> (status=0)
// and wfID/credited (status=1: the ledger credits a deposit once, so it is
// announced credited once whatever run gets there). A Silent Deposit takes
// the same path and publishes none of them.
func Deposit(ctx workflow.Context, in DepositInput) (protocol.TopupResponse, error) {
	// Executions started before the version keep their behaviour (deadline
	// only after "reorged", status=0 completes, ids wfID/seen and wfID/final).
	version := workflow.GetVersion(ctx, depositInclusionVersion, workflow.DefaultVersion, 1)
	wfID := workflow.GetInfo(ctx).WorkflowExecution.ID
	resp := protocol.TopupResponse{Address: in.Address, Status: protocol.StatusPending, Chain: in.Chain, Symbol: in.Symbol,
		Amount: in.Amount, TxHash: in.TxHash, LogIndex: in.LogIndex, BlockNumber: in.BlockNumber, FromAddress: in.From}
	step := "seen"
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (string, error) { return step, nil }); err != nil {
		return resp, err
	}
	setStep := func(s string) {
		step = s
		_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(s))
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrFlow.ValueSet("deposit"), AttrAddress.ValueSet(in.Address),
		AttrTxHash.ValueSet(in.TxHash), AttrStatus.ValueSet(step))
	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
	cctx := workflow.WithActivityOptions(ctx, chainOpts)
	publish := func(id string) error {
		if in.Silent {
			return nil // booked, not announced: no business asked about this address
		}
		r := resp
		return workflow.ExecuteActivity(lctx, a.PublishResult, activities.PublishInput{Flow: protocol.FlowTopup,
			MessageID: id, Topup: &r}).Get(ctx, nil)
	}
	seenID, failedID, creditedID := wfID+"/seen", wfID+"/final", wfID+"/final"
	if version >= 1 {
		seenID, failedID, creditedID = depositMessageID(wfID, "seen", in.BlockHash),
			depositMessageID(wfID, "final", in.BlockHash), wfID+"/credited"
	}
	track := func() error {
		return workflow.ExecuteActivity(lctx, a.TrackTx, activities.TrackInput{TxHash: in.TxHash, WorkflowID: wfID}).Get(ctx, nil)
	}
	verify := func() (activities.DepositCheck, error) {
		var chk activities.DepositCheck
		err := workflow.ExecuteActivity(cctx, a.VerifyDeposit, activities.DepositRef{TxHash: in.TxHash,
			LogIndex: in.LogIndex, Token: in.Token, To: in.Address, Units: in.Units}).Get(ctx, &chk)
		return chk, err
	}
	// Screening: a sender on the deny list is told in every notice, and
	// its deposit is credited held (CreditDeposit).
	screened := workflow.GetVersion(ctx, depositScreeningVersion, workflow.DefaultVersion, 1) >= 1
	if screened {
		var scr activities.ScreenResult
		if err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, localOpts), a.ScreenSender,
			activities.ScreenInput{From: in.From}).Get(ctx, &scr); err != nil {
			return resp, err
		}
		resp.Risk = scr.Risk
	}
	if err := track(); err != nil {
		return resp, err
	}
	if err := publish(seenID); err != nil {
		return resp, err
	}

	reinclude := in.ReincludeTimeout
	if reinclude <= 0 {
		reinclude = 10 * time.Minute
	}
	events := workflow.GetSignalChannel(ctx, SignalTxEvent)
	delivered := workflow.GetSignalChannel(ctx, SignalDepositDelivered)
	var deadline workflow.Future
	var cancelDeadline workflow.CancelFunc
	disarm := func() {
		if cancelDeadline != nil {
			cancelDeadline()
		}
		deadline, cancelDeadline = nil, nil
	}
	arm := func() {
		disarm()
		var tctx workflow.Context
		tctx, cancelDeadline = workflow.WithCancel(ctx)
		deadline = workflow.NewTimer(tctx, reinclude)
	}
	// unseen: the deadline armed at the start, before any milestone. The
	// tracker reports "reorged" only for a deposit it saw in a block, so a
	// block orphaned before it looked would otherwise leave this waiting for
	// ever. A milestone replaces it.
	unseen := false
	if version >= 1 {
		arm()
		unseen = true
	}
	rearmed := false
	for {
		var ev TxEvent
		expired := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(events, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &ev) })
		if deadline != nil {
			sel.AddFuture(deadline, func(f workflow.Future) { expired = f.Get(ctx, nil) == nil })
		}
		sel.Select(ctx)
		if expired && version >= 1 {
			deadline, cancelDeadline, unseen = nil, nil, false
			// Deliveries until now are answered by the check below.
			var dd DepositDelivery
			for delivered.ReceiveAsync(&dd) {
			}
			// The tracker may lag, or have stopped following the tx: absence
			// is proven before it is announced.
			chk, err := verify()
			if err != nil {
				return resp, err
			}
			if chk.Present {
				// In a block after all: follow it to confirmation (TrackTx
				// re-arms a tracker that was done with it); a new reorg arms a
				// new deadline.
				if err := track(); err != nil {
					return resp, err
				}
				setStep("confirming")
				continue
			}
		}
		if expired {
			setStep("failed")
			resp.Status, resp.Error = protocol.StatusFailed,
				fmt.Sprintf("deposit reorganised away and not re-included within %s", reinclude)
			if err := publish(failedID); err != nil || version < 1 {
				return resp, err
			}
			var last, dd DepositDelivery
			for delivered.ReceiveAsync(&dd) {
				last = dd
			}
			if last.BlockHash != "" {
				// Mined again while this run was closing: announced afresh.
				workflow.GetLogger(ctx).Warn("deposit mined again as status=0 was answered; starting over",
					"tx_hash", in.TxHash, "log_index", in.LogIndex, "block_hash", last.BlockHash)
				next := in
				next.BlockHash, next.BlockNumber = last.BlockHash, last.BlockNumber
				return resp, workflow.NewContinueAsNewError(ctx, Deposit, next)
			}
			workflow.GetLogger(ctx).Warn("deposit not re-included; answered status=0", "tx_hash", in.TxHash,
				"log_index", in.LogIndex, "address", in.Address)
			return resp, temporal.NewNonRetryableApplicationError(resp.Error, ErrTypeDepositNotIncluded, nil, resp)
		}
		if ev.TxHash != "" && !strings.EqualFold(ev.TxHash, in.TxHash) {
			continue
		}
		switch ev.Milestone {
		case chain.MilestoneReorged:
			setStep("reorged")
			if deadline == nil || unseen {
				arm() // out of the chain from now
			}
			unseen = false
		case chain.MilestoneSeen:
			setStep("confirming")
			disarm()
			unseen = false
		case chain.MilestoneConfirmed:
			if unseen {
				disarm()
				unseen = false
			}
			chk, err := verify()
			if err != nil {
				return resp, err
			}
			if !chk.Present {
				// Gone between the tracker's check and ours (a reorg, or a node
				// behind the tracker's): wait for re-inclusion. The tracker stops
				// following a tx once confirmed, so re-arm it, or no event ever
				// comes. Once only: a re-included tx that now reverts would
				// otherwise loop seen/confirmed/absent for ever.
				if !rearmed && workflow.GetVersion(ctx, "deposit-rearm-tracking", workflow.DefaultVersion, 1) == 1 {
					rearmed = true
					if err := track(); err != nil {
						return resp, err
					}
				}
				setStep("reorged")
				if deadline == nil {
					arm()
				}
				continue
			}
			setStep("crediting")
			credit := activities.CreditInput{Chain: in.Chain, Address: in.Address, Symbol: in.Symbol, Amount: in.Amount,
				TxHash: in.TxHash, LogIndex: in.LogIndex, WorkflowID: wfID, From: in.From}
			var credited activities.CreditResult
			if screened {
				credit.Screened, credit.Risk = true, resp.Risk
			}
			if err := workflow.ExecuteActivity(lctx, a.CreditDeposit, credit).Get(ctx, &credited); err != nil {
				return resp, err
			}
			resp.Status, resp.BlockNumber = protocol.StatusSucceeded, chk.BlockNumber
			step := "credited"
			if screened && credited.Risk != "" {
				resp.Risk, step = credited.Risk, "held"
			}
			setStep(step)
			return resp, publish(creditedID)
		}
	}
}

// depositScreeningVersion marks Deposits that screen their sender against
// the deny list: a risk in their notices, and a held credit.
const depositScreeningVersion = "deposit-screening"

// depositMessageID keys a deposit's message by the block it was delivered
// from; unkeyed when the starter did not say.
func depositMessageID(wfID, kind, blockHash string) string {
	if blockHash == "" {
		return wfID + "/" + kind
	}
	return wfID + "/" + kind + "/" + strings.ToLower(blockHash)
}
