package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
)

// SweepScheduleID is the id of the Temporal Schedule that runs Sweep.
const SweepScheduleID = "payflow-sweep"

// Error types a WalletSweep fails with (besides the activities' ErrType*).
const (
	// ErrTypeGasTopUpTimeout: the gas top-up was not confirmed in time; the
	// tokens were not swept and their reservation was released.
	ErrTypeGasTopUpTimeout = "GasTopUpTimeout"
	// ErrTypeSweepReverted: a top-up or sweep transaction reverted.
	ErrTypeSweepReverted = "SweepReverted"
)

// Sweep steps, as QueryStatus and the PayflowStatus attribute show them.
const (
	SweepStepPlanning   = "planning"
	SweepStepStarted    = "started"
	SweepStepReserving  = "reserving"
	SweepStepGas        = "topping-up-gas"
	SweepStepSweeping   = "sweeping"
	SweepStepConfirming = "confirming"
	SweepStepStuck      = "stuck"
	SweepStepSettling   = "settling"
	SweepStepSwept      = "swept"
	SweepStepNothing    = "nothing-to-sweep"
	SweepStepFailed     = "failed"
)

// Steps of a wallet sweep's transactions in signed_txs.
const (
	gasTopUpStep = "gas-topup"
	sweepStep    = "sweep-" // + symbol
)

// WalletSweepWorkflowID identifies one wallet's sweep within a run: stamp is
// the run's start time, so every run sweeps a wallet under a new id.
func WalletSweepWorkflowID(chain, address, stamp string) string {
	return "sweep-" + chain + "-" + strings.ToLower(address) + "-" + stamp
}

// SweepReservationKey is the ledger reservation holding what a wallet sweep
// moves of one symbol: the sweep's workflow id (which names the wallet) and
// the symbol.
func SweepReservationKey(workflowID, symbol string) string { return workflowID + "/" + symbol }

// SweepInput starts a collection sweep (归集).
type SweepInput struct {
	// Symbols to sweep; empty means every configured token.
	Symbols []string
	// Threshold: a deposit wallet whose available balance of a symbol is
	// strictly above it has all of that balance swept.
	Threshold protocol.Amount
	// Addresses limits the run to these deposit wallets; empty means all.
	Addresses []string
	// ConfirmTimeout bounds the wait for a gas top-up to confirm (then the
	// wallet's sweep gives up and releases), and is how long a broadcast
	// sweep waits before asking the chain whether it is stuck. 0 means 10m.
	ConfirmTimeout time.Duration

	// Stamp and After carry a run across continue-as-new.
	Stamp string `json:",omitempty"`
	After string `json:",omitempty"`
}

// SweepResult lists the wallet sweeps a run started.
type SweepResult struct {
	Chain      string
	Collection string
	// Started lists the first 100 child workflows started; StartedCount counts all.
	Started      []SweepStarted `json:",omitempty"`
	StartedCount int
	// NotStarted counts wallets whose sweep could not start (an execution
	// with the same id exists).
	NotStarted int
}

// SweepStarted is one wallet sweep a run started.
type SweepStarted struct {
	Address    string
	Symbols    []string
	WorkflowID string
}

// Sweep collects deposit wallets' tokens into the collection wallet. It
// lists the deposit wallets whose available ledger balance of a symbol is
// above the threshold and starts one WalletSweep child workflow per wallet,
// with id WalletSweepWorkflowID, abandoned on close: the run ends once they
// have started, and a wallet whose sweep is stuck (a top-up or sweep waiting
// for the chain) holds up neither the other wallets nor the next run.
func Sweep(ctx workflow.Context, in SweepInput) (SweepResult, error) {
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrFlow.ValueSet("sweep"), AttrStatus.ValueSet(SweepStepPlanning))
	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
	stamp := in.Stamp
	if stamp == "" {
		stamp = workflow.Now(ctx).UTC().Format("20060102T150405Z")
	}
	var res SweepResult
	after := in.After
	for {
		var plan activities.SweepPlan
		if err := workflow.ExecuteActivity(lctx, a.PlanSweep, activities.SweepPlanInput{Symbols: in.Symbols,
			Threshold: in.Threshold, Addresses: in.Addresses, After: after, Limit: 100}).Get(ctx, &plan); err != nil {
			return res, err
		}
		res.Chain, res.Collection = plan.Chain, plan.Collection
		type started struct {
			s SweepStarted
			f workflow.ChildWorkflowFuture
		}
		var children []started
		for _, c := range plan.Candidates {
			id := WalletSweepWorkflowID(plan.Chain, c.Address, stamp)
			// A reset run that reaches a wallet again finds its sweep by id
			// (not started) instead of starting another.
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id,
				ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
				WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE})
			f := workflow.ExecuteChildWorkflow(cctx, WalletSweep, WalletSweepInput{Chain: plan.Chain, Address: c.Address,
				Symbols: c.Symbols, Threshold: in.Threshold, Collection: plan.Collection, GasWallet: plan.GasWallet,
				ConfirmTimeout: in.ConfirmTimeout})
			children = append(children, started{SweepStarted{Address: c.Address, Symbols: c.Symbols, WorkflowID: id}, f})
		}
		for _, c := range children {
			if err := c.f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
				res.NotStarted++
				workflow.GetLogger(ctx).Warn("wallet sweep not started", "address", c.s.Address, "workflow_id",
					c.s.WorkflowID, "err", err)
				continue
			}
			res.StartedCount++
			if len(res.Started) < 100 {
				res.Started = append(res.Started, c.s)
			}
		}
		if plan.Next == "" {
			break
		}
		after = plan.Next
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			next := in
			next.Stamp, next.After = stamp, after
			return res, workflow.NewContinueAsNewError(ctx, Sweep, next)
		}
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(SweepStepStarted))
	workflow.GetLogger(ctx).Info("sweep started", "wallets", res.StartedCount, "not_started", res.NotStarted)
	return res, nil
}

// WalletSweepInput sweeps one deposit wallet.
type WalletSweepInput struct {
	Chain      string
	Address    string   // the deposit wallet
	Symbols    []string // swept in this order
	Threshold  protocol.Amount
	Collection string
	GasWallet  string // "" = none; a wallet that needs gas then fails
	// ConfirmTimeout: see SweepInput. 0 means 10m.
	ConfirmTimeout time.Duration
}

// WalletSweepResult says what a wallet sweep moved.
type WalletSweepResult struct {
	Address     string
	TopUpTxHash string `json:",omitempty"` // the gas top-up, if one was needed
	Swept       []SweptToken
	// Skipped lists symbols whose available balance was not above the
	// threshold by the time the sweep reserved.
	Skipped []string `json:",omitempty"`
}

// SweptToken is one symbol swept into the collection wallet.
type SweptToken struct {
	Symbol      string
	Amount      protocol.Amount
	TxHash      string
	BlockNumber uint64
}

// WalletSweepStatus answers QueryStatus on a WalletSweep.
type WalletSweepStatus struct {
	Step    string `json:"step"`
	Summary string `json:"summary"`
}

// WalletSweep moves a deposit wallet's available balance of each symbol to
// the collection wallet:
//
//  1. reserve the whole available balance (above the threshold) in the
//     ledger, under SweepReservationKey, so the user cannot spend it meanwhile;
//  2. if the wallet cannot pay the transfers' gas, top it up with ETH from the
//     gas wallet (signed once, step "gas-topup") and wait for the tracker's
//     "confirmed" signal; if none comes within ConfirmTimeout, release
//     everything and fail without sweeping (ErrTypeGasTopUpTimeout);
//  3. per symbol: sign and broadcast the token transfer (step
//     "sweep-<SYMBOL>"), wait for its confirmation, settle the reservation and
//     credit the collection wallet keyed by the sweep's tx hash and log index.
//
// Any failure before a transfer is broadcast releases its reservation. Once
// broadcast it may still be mined, so it is waited for, visibly "stuck",
// never released, unless it reverts.
//
// Every wallet signs from its own nonce lane (the nonces table is keyed by
// sending address): a deposit wallet's sweep and the gas wallet's top-ups
// never queue behind, or hold up, the hot wallet's withdrawals.
func WalletSweep(ctx workflow.Context, in WalletSweepInput) (res WalletSweepResult, err error) {
	wfID := workflow.GetInfo(ctx).WorkflowExecution.ID
	res.Address = strings.ToLower(in.Address)
	status := WalletSweepStatus{}
	setStep := func(step, summary string) {
		status = WalletSweepStatus{Step: step, Summary: summary}
		_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(step))
		workflow.GetLogger(ctx).Info("sweep step", "address", res.Address, "step", step, "summary", summary)
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (WalletSweepStatus, error) { return status, nil }); err != nil {
		return res, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrFlow.ValueSet("sweep"), AttrAddress.ValueSet(res.Address))
	timeout := in.ConfirmTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
	cctx := workflow.WithActivityOptions(ctx, chainOpts)

	// Reservations held for transfers not broadcast yet: a failure releases them.
	var releasable []string
	defer func() {
		if err == nil {
			return
		}
		msg := errorMessage(err)
		if len(releasable) > 0 {
			// Disconnected, so a cancelled sweep still gives the balance back.
			dctx, _ := workflow.NewDisconnectedContext(ctx)
			dctx = workflow.WithActivityOptions(dctx, ledgerOpts)
			for _, key := range releasable {
				if rerr := workflow.ExecuteActivity(dctx, a.ReleaseFunds, activities.ReleaseInput{Key: key}).
					Get(dctx, nil); rerr != nil {
					err = errors.Join(err, rerr)
				}
			}
		}
		setStep(SweepStepFailed, msg)
	}()

	setStep(SweepStepReserving, fmt.Sprintf("reserving %s above %s on %s", strings.Join(in.Symbols, ","),
		in.Threshold.String(), res.Address))
	var items []activities.SweepItem
	for _, sym := range in.Symbols {
		key := SweepReservationKey(wfID, sym)
		var r activities.SweepReserveResult
		if err := workflow.ExecuteActivity(lctx, a.ReserveSweep, activities.SweepReserveInput{Key: key, WorkflowID: wfID,
			Address: res.Address, Symbol: sym, Threshold: in.Threshold}).Get(ctx, &r); err != nil {
			return res, err
		}
		if !r.Reserved {
			res.Skipped = append(res.Skipped, sym)
			continue
		}
		releasable = append(releasable, key)
		items = append(items, activities.SweepItem{Symbol: sym, Amount: r.Amount})
	}
	if len(items) == 0 {
		setStep(SweepStepNothing, "no balance above the threshold")
		return res, nil
	}

	var gas activities.SweepGasResult
	if err := workflow.ExecuteActivity(cctx, a.CheckSweepGas, activities.SweepGasInput{Address: res.Address,
		Collection: in.Collection, Items: items}).Get(ctx, &gas); err != nil {
		return res, err
	}
	if gas.TopUpWei != "0" {
		if res.TopUpTxHash, err = topUpGas(ctx, in, wfID, gas, timeout, setStep); err != nil {
			return res, err
		}
	}

	events := workflow.GetSignalChannel(ctx, SignalTxEvent)
	for _, it := range items {
		key, step := SweepReservationKey(wfID, it.Symbol), sweepStep+it.Symbol
		setStep(SweepStepSweeping, fmt.Sprintf("sweeping %s %s from %s to %s", it.Amount.String(), it.Symbol,
			res.Address, in.Collection))
		var signed activities.TransferResult
		if err := workflow.ExecuteActivity(cctx, a.SignTransfer, activities.TransferInput{WorkflowID: wfID, Step: step,
			Symbol: it.Symbol, From: res.Address, To: in.Collection, Amount: it.Amount}).Get(ctx, &signed); err != nil {
			return res, err
		}
		_ = workflow.UpsertTypedSearchAttributes(ctx, AttrTxHash.ValueSet(signed.TxHash))
		if err := workflow.ExecuteActivity(cctx, a.Broadcast, activities.BroadcastInput{WorkflowID: wfID, Step: step}).
			Get(ctx, nil); err != nil {
			return res, err // only permanent errors: ours can never be mined
		}
		releasable = without(releasable, key)

		setStep(SweepStepConfirming, "waiting for confirmations of "+signed.TxHash)
		var ev TxEvent
		for {
			var ok bool
			if ev, ok = awaitTx(ctx, events, signed.TxHash, timeout); ok {
				break
			}
			// Broadcast and not confirmed in time: it may still be mined, so
			// the reservation stays; ask the chain, and wait on.
			var rc activities.ReceiptResult
			if err := workflow.ExecuteActivity(cctx, a.CheckReceipt, activities.ReceiptInput{TxHash: signed.TxHash}).
				Get(ctx, &rc); err != nil {
				return res, err
			}
			if rc.Mined {
				ev = TxEvent{TxHash: signed.TxHash, Milestone: "confirmed", BlockNumber: rc.BlockNumber, Succeeded: rc.Succeeded}
				break
			}
			setStep(SweepStepStuck, fmt.Sprintf("%s not mined after %s; still waiting", signed.TxHash, timeout))
		}
		if !ev.Succeeded {
			releasable = append(releasable, key) // a reverted transfer moved nothing
			return res, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("sweep %s reverted in block %d", signed.TxHash, ev.BlockNumber), ErrTypeSweepReverted, nil)
		}

		setStep(SweepStepSettling, "settling the ledger for "+signed.TxHash)
		if err := workflow.ExecuteActivity(lctx, a.SettleFunds, activities.SettleInput{Key: key, TxHash: signed.TxHash}).
			Get(ctx, nil); err != nil {
			return res, err
		}
		if err := workflow.ExecuteActivity(lctx, a.CreditSweep, activities.SweepCreditInput{WorkflowID: wfID,
			From: res.Address, Collection: in.Collection, Symbol: it.Symbol, Amount: it.Amount, TxHash: signed.TxHash}).
			Get(ctx, nil); err != nil {
			return res, err
		}
		res.Swept = append(res.Swept, SweptToken{Symbol: it.Symbol, Amount: it.Amount, TxHash: signed.TxHash,
			BlockNumber: ev.BlockNumber})
	}
	setStep(SweepStepSwept, fmt.Sprintf("swept %d token(s) from %s", len(res.Swept), res.Address))
	return res, nil
}

// topUpGas sends the gas wallet's top-up and waits for its confirmation, at
// most timeout. It returns the top-up's hash.
func topUpGas(ctx workflow.Context, in WalletSweepInput, wfID string, gas activities.SweepGasResult, timeout time.Duration,
	setStep func(step, summary string)) (string, error) {
	if in.GasWallet == "" {
		return "", temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s needs %s wei for gas and there is no gas wallet",
			in.Address, gas.NeedWei), activities.ErrTypeNoSweepTarget, nil)
	}
	var a *activities.Activities
	cctx := workflow.WithActivityOptions(ctx, chainOpts)
	setStep(SweepStepGas, fmt.Sprintf("%s holds %s wei, needs %s: topping up %s wei from %s", in.Address, gas.HaveWei,
		gas.NeedWei, gas.TopUpWei, in.GasWallet))
	var top activities.TransferResult
	if err := workflow.ExecuteActivity(cctx, a.SignTopUp, activities.TopUpInput{WorkflowID: wfID, Step: gasTopUpStep,
		From: in.GasWallet, To: in.Address, Wei: gas.TopUpWei}).Get(ctx, &top); err != nil {
		return "", err
	}
	if err := workflow.ExecuteActivity(cctx, a.Broadcast, activities.BroadcastInput{WorkflowID: wfID, Step: gasTopUpStep}).
		Get(ctx, nil); err != nil {
		return top.TxHash, err
	}
	ev, ok := awaitTx(ctx, workflow.GetSignalChannel(ctx, SignalTxEvent), top.TxHash, timeout)
	switch {
	case !ok:
		// The top-up may still be mined later; it only leaves ETH in the
		// deposit wallet, which the next sweep finds.
		return top.TxHash, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("gas top-up %s not confirmed within %s", top.TxHash, timeout), ErrTypeGasTopUpTimeout, nil)
	case !ev.Succeeded:
		return top.TxHash, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("gas top-up %s reverted in block %d", top.TxHash, ev.BlockNumber), ErrTypeSweepReverted, nil)
	}
	return top.TxHash, nil
}

// awaitTx waits for the tracker's "confirmed" signal of txHash, or timeout.
// Other transactions' signals and other milestones are skipped.
func awaitTx(ctx workflow.Context, events workflow.ReceiveChannel, txHash string, timeout time.Duration) (TxEvent, bool) {
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	timer := workflow.NewTimer(tctx, timeout)
	for {
		var ev TxEvent
		timedOut := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(events, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &ev) })
		sel.AddFuture(timer, func(workflow.Future) { timedOut = true })
		sel.Select(ctx)
		if timedOut {
			return TxEvent{}, false
		}
		if strings.EqualFold(ev.TxHash, txHash) && ev.Milestone == "confirmed" {
			return ev, true
		}
	}
}

func without(keys []string, key string) []string {
	out := keys[:0]
	for _, k := range keys {
		if k != key {
			out = append(out, k)
		}
	}
	return out
}
