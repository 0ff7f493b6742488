package workflows

import (
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
)

// TreasuryScheduleID is the id of the Temporal Schedule that runs Treasury.
const TreasuryScheduleID = "payflow-treasury"

// Treasury steps, as the PayflowStatus attribute shows them.
const (
	TreasuryStepPlanning = "planning"
	TreasuryStepStarted  = "started"
	TreasuryStepNothing  = "nothing-above-ceiling"
)

// TreasurySweepWorkflowID identifies the treasury sweep of one wallet and
// asset. It is the same for every run: Temporal starts no second one while
// one runs, so a wallet and asset has at most one treasury sweep in flight.
func TreasurySweepWorkflowID(chain, address, symbol string) string {
	return "treasury-" + chain + "-" + strings.ToLower(address) + "-" + strings.ToUpper(symbol)
}

// TreasuryInput starts a pass over a chain's hot tiers.
type TreasuryInput struct {
	// Symbols to look at; empty means every asset with a hot_ceiling.
	Symbols []string
	// Ceiling overrides the configured hot_ceiling of the one symbol a run
	// names (Symbols of length 1), in that symbol's units: an operator's
	// "keep this much hot, send the rest to cold now". A run of several
	// symbols ignores it.
	Ceiling protocol.Amount
	// ConfirmTimeout: see SweepInput. 0 means 10m.
	ConfirmTimeout time.Duration
	// Stamp carries the run's start across a reset; "" for a new run.
	Stamp string `json:",omitempty"`
}

// TreasuryResult lists the treasury sweeps a run started.
type TreasuryResult struct {
	Chain   string
	Cold    string
	Started []TreasuryStarted `json:",omitempty"`
	// InFlight counts the assets whose wallet's treasury sweep was still
	// running: none was started for them.
	InFlight int
}

// TreasuryStarted is one treasury sweep a run started.
type TreasuryStarted struct {
	Symbol     string
	Address    string
	Excess     protocol.Amount // the tier's excess when planned; the sweep reserves it afresh
	WorkflowID string
}

// Treasury moves each hot tier's excess to the chain's cold address. The
// hot tier of an asset is what the chain's hot and collection wallets hold
// available in the ledger; above the asset's hot_ceiling (PlanTreasury),
// the excess is taken from the tier wallet holding the most, at most its
// available balance (for the native coin, less the gas of its transfer).
// Each is a WalletSweep child in treasury mode (TreasuryRun), id
// TreasurySweepWorkflowID, abandoned on close, with the life of every sweep:
// reserved in the ledger with the cold address as recipient, signed by
// payflow-signer against that reservation, stored before it is sent,
// followed to confirmation, settled, and the cold wallet credited once under
// the deposit key the listener uses. The run ends once they have started;
// an asset whose wallet's sweep is still running is counted in InFlight and
// left for the next run.
func Treasury(ctx workflow.Context, in TreasuryInput) (TreasuryResult, error) {
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrFlow.ValueSet("treasury"), AttrStatus.ValueSet(TreasuryStepPlanning))
	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
	stamp := in.Stamp
	if stamp == "" {
		stamp = workflow.Now(ctx).UTC().Format("20060102T150405Z")
	}
	ceiling := in.Ceiling
	if len(in.Symbols) != 1 {
		ceiling = protocol.Amount{} // see TreasuryInput.Ceiling
	}
	var plan activities.TreasuryPlan
	if err := workflow.ExecuteActivity(lctx, a.PlanTreasury, activities.TreasuryPlanInput{Symbols: in.Symbols,
		Ceiling: ceiling}).Get(ctx, &plan); err != nil {
		return TreasuryResult{}, err
	}
	res := TreasuryResult{Chain: plan.Chain, Cold: plan.Cold}
	type started struct {
		s TreasuryStarted
		f workflow.ChildWorkflowFuture
	}
	var children []started
	for _, c := range plan.Candidates {
		id := TreasurySweepWorkflowID(plan.Chain, c.Address, c.Symbol)
		// The same id every run: one in flight per wallet and asset. A
		// closed one may be followed by the next; its reservation and
		// steps carry the stamp, so a reset run that starts it again with
		// the same stamp finds its reservation closed and moves nothing.
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id, WorkflowTaskTimeout: TaskTimeout,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE})
		f := workflow.ExecuteChildWorkflow(cctx, WalletSweep, WalletSweepInput{Chain: plan.Chain, Address: c.Address,
			Symbols: []string{c.Symbol}, Collection: plan.Cold, GasWallet: plan.GasWallet, ConfirmTimeout: in.ConfirmTimeout,
			Treasury: &TreasuryRun{Stamp: stamp, Ceiling: ceiling}})
		children = append(children, started{TreasuryStarted{Symbol: c.Symbol, Address: c.Address, Excess: c.Excess, WorkflowID: id}, f})
	}
	for _, c := range children {
		if err := c.f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			res.InFlight++
			workflow.GetLogger(ctx).Info("treasury sweep not started: one is in flight", "address", c.s.Address,
				"symbol", c.s.Symbol, "workflow_id", c.s.WorkflowID, "err", err)
			continue
		}
		res.Started = append(res.Started, c.s)
	}
	status := TreasuryStepStarted
	if len(plan.Candidates) == 0 {
		status = TreasuryStepNothing
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(status))
	workflow.GetLogger(ctx).Info("treasury pass", "started", len(res.Started), "in_flight", res.InFlight)
	return res, nil
}
