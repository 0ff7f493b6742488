package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
)

// SignalUnwatch ends a Topup watch.
const SignalUnwatch = "unwatch"

// TopupWorkflowID is the id of the watch of an address: a second topup for
// the same address starts nothing.
func TopupWorkflowID(chain, address string) string {
	return "topup-" + chain + "-" + strings.ToLower(address)
}

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
	// ReincludeTimeout: after a reorg removes the deposit, how long to wait
	// for it to be mined again before answering status=0.
	ReincludeTimeout time.Duration
}

// Deposit announces one deposit twice: status=2 when seen, then status=1 once
// it has the configured confirmations (crediting the ledger once), or status=0
// if it is reorganised away and not re-included in time.
func Deposit(ctx workflow.Context, in DepositInput) (protocol.TopupResponse, error) {
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
	publish := func(suffix string) error {
		r := resp
		return workflow.ExecuteActivity(lctx, a.PublishResult, activities.PublishInput{Flow: protocol.FlowTopup,
			MessageID: wfID + "/" + suffix, Topup: &r}).Get(ctx, nil)
	}
	if err := workflow.ExecuteActivity(lctx, a.TrackTx, activities.TrackInput{TxHash: in.TxHash, WorkflowID: wfID}).Get(ctx, nil); err != nil {
		return resp, err
	}
	if err := publish("seen"); err != nil {
		return resp, err
	}

	reinclude := in.ReincludeTimeout
	if reinclude <= 0 {
		reinclude = 10 * time.Minute
	}
	events := workflow.GetSignalChannel(ctx, SignalTxEvent)
	var deadline workflow.Future
	var cancelDeadline workflow.CancelFunc
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
		if expired {
			setStep("failed")
			resp.Status, resp.Error = protocol.StatusFailed,
				fmt.Sprintf("deposit reorganised away and not re-included within %s", reinclude)
			return resp, publish("final")
		}
		if ev.TxHash != "" && !strings.EqualFold(ev.TxHash, in.TxHash) {
			continue
		}
		switch ev.Milestone {
		case "reorged":
			setStep("reorged")
			if deadline == nil {
				var tctx workflow.Context
				tctx, cancelDeadline = workflow.WithCancel(ctx)
				deadline = workflow.NewTimer(tctx, reinclude)
			}
		case "seen":
			setStep("confirming")
			if cancelDeadline != nil {
				cancelDeadline()
				deadline, cancelDeadline = nil, nil
			}
		case "confirmed":
			var chk activities.DepositCheck
			if err := workflow.ExecuteActivity(cctx, a.VerifyDeposit, activities.DepositRef{TxHash: in.TxHash,
				LogIndex: in.LogIndex, Token: in.Token, To: in.Address, Units: in.Units}).Get(ctx, &chk); err != nil {
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
					if err := workflow.ExecuteActivity(lctx, a.TrackTx, activities.TrackInput{TxHash: in.TxHash,
						WorkflowID: wfID}).Get(ctx, nil); err != nil {
						return resp, err
					}
				}
				setStep("reorged")
				if deadline == nil {
					var tctx workflow.Context
					tctx, cancelDeadline = workflow.WithCancel(ctx)
					deadline = workflow.NewTimer(tctx, reinclude)
				}
				continue
			}
			setStep("crediting")
			if err := workflow.ExecuteActivity(lctx, a.CreditDeposit, activities.CreditInput{Chain: in.Chain, Address: in.Address,
				Symbol: in.Symbol, Amount: in.Amount, TxHash: in.TxHash, LogIndex: in.LogIndex, WorkflowID: wfID}).Get(ctx, nil); err != nil {
				return resp, err
			}
			resp.Status, resp.BlockNumber = protocol.StatusSucceeded, chk.BlockNumber
			setStep("credited")
			return resp, publish("final")
		}
	}
}
