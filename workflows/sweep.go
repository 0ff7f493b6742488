package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
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
	// tokens were not swept and their reservation was released. Only runs
	// started before followTopUpChange give a top-up up.
	ErrTypeGasTopUpTimeout = "GasTopUpTimeout"
	// ErrTypeSweepReverted: a top-up or sweep transaction reverted.
	ErrTypeSweepReverted = "SweepReverted"
)

// Sweep steps, as QueryStatus and the PayflowStatus attribute show them.
const (
	SweepStepPlanning  = "planning"
	SweepStepStarted   = "started"
	SweepStepReserving = "reserving"
	SweepStepGas       = "topping-up-gas"
	SweepStepSweeping  = "sweeping"
	SweepStepSettling  = "settling"
	SweepStepSwept     = "swept"
	SweepStepNothing   = "nothing-to-sweep"
	SweepStepFailed    = "failed"
	// SweepStepCancelled: an operator's cancel request stopped the sweep
	// before it signed more; what it held and had not signed was released.
	SweepStepCancelled = "cancelled"
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
	// Threshold overrides the configured sweep_threshold of the one symbol
	// a run names (Symbols of length 1), in that symbol's units: an
	// operator's "sweep this asset above X now". A run of several symbols
	// (the hourly schedule's) ignores it: one number means different money
	// in different assets, so each asset is swept above its own
	// sweep_threshold. A deposit wallet whose available balance of a symbol
	// is strictly above that symbol's threshold has all of it swept.
	Threshold protocol.Amount
	// Addresses limits the run to these deposit wallets; empty means all.
	Addresses []string
	// ConfirmTimeout is how long a broadcast top-up or sweep waits before it
	// is replaced at a higher fee (neither is ever given up: see
	// WalletSweep). 0 means 10m.
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
// above that symbol's sweep threshold and starts one WalletSweep child
// workflow per wallet, with id WalletSweepWorkflowID, abandoned on close: the
// run ends once they have started, and a wallet whose sweep is stuck (a top-up or sweep waiting
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
	threshold := in.Threshold
	if len(in.Symbols) != 1 {
		threshold = protocol.Amount{} // see SweepInput.Threshold
	}
	for {
		var plan activities.SweepPlan
		if err := workflow.ExecuteActivity(lctx, a.PlanSweep, activities.SweepPlanInput{Symbols: in.Symbols,
			Threshold: threshold, Addresses: in.Addresses, After: after, Limit: 100}).Get(ctx, &plan); err != nil {
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
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id, WorkflowTaskTimeout: TaskTimeout,
				ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
				WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE})
			f := workflow.ExecuteChildWorkflow(cctx, WalletSweep, WalletSweepInput{Chain: plan.Chain, Address: c.Address,
				Symbols: c.Symbols, Threshold: threshold, Collection: plan.Collection, GasWallet: plan.GasWallet,
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
	Address    string          // the deposit wallet
	Symbols    []string        // swept in this order
	Threshold  protocol.Amount // see SweepInput.Threshold
	Collection string
	GasWallet  string // "" = none; a wallet that needs gas then fails
	// ConfirmTimeout: see SweepInput. 0 means 10m.
	ConfirmTimeout time.Duration
	// Treasury, when set, makes this a treasury sweep (see Treasury):
	// Address is a hot or collection wallet, Symbols one asset, Collection
	// the chain's cold address.
	Treasury *TreasuryRun `json:",omitempty"`
}

// TreasuryRun is what a treasury sweep adds to a WalletSweep.
type TreasuryRun struct {
	// Stamp is the Treasury run's start: every treasury sweep of a wallet
	// and asset has the same workflow id (TreasurySweepWorkflowID), so its
	// reservation and steps carry the stamp.
	Stamp string
	// Ceiling overrides the asset's hot_ceiling when positive (see
	// TreasuryInput.Ceiling).
	Ceiling protocol.Amount `json:",omitempty"`
}

// WalletSweepResult says what a wallet sweep moved.
type WalletSweepResult struct {
	Address     string
	TopUpTxHash string `json:",omitempty"` // the gas top-up, if one was needed
	Swept       []SweptToken
	// Skipped lists symbols whose available balance was not above their
	// sweep threshold by the time the sweep reserved.
	Skipped []string `json:",omitempty"`
}

// SweptToken is one symbol swept into the collection wallet: Amount is
// what reached it.
type SweptToken struct {
	Symbol      string
	Amount      protocol.Amount
	TxHash      string
	BlockNumber uint64
	// Fee is what the sweep paid out of the amount swept, on a chain whose
	// sweeps pay their fee so (""): the deposit wallet gave Amount + Fee.
	Fee string `json:",omitempty"`
}

// WalletSweepStatus answers QueryStatus on a WalletSweep.
type WalletSweepStatus struct {
	Step    string `json:"step"`
	Summary string `json:"summary"`
}

// WalletSweep moves a deposit wallet's available balance of each symbol to
// the collection wallet:
//
//  1. reserve the whole available balance (above the asset's sweep
//     threshold) in the ledger, under SweepReservationKey, so the user cannot
//     spend it meanwhile;
//  2. if the wallet cannot pay the transfers' gas, top it up with the native
//     coin from the gas wallet (step "gas-topup") and follow that transfer to
//     the chain's verdict like any other (replaced at a higher fee while
//     unconfirmed), then book it (BookTopUp); a top-up that did not pay
//     releases the tokens and fails (ErrTypeSweepReverted);
//  3. per symbol: the transfer's life (runTransfer, step "sweep-<SYMBOL>"),
//     then settle the reservation and credit the collection wallet keyed by
//     the sweep's tx hash and log index.
//
// Reservations follow the one rule of runTransfer: released only when nothing
// was signed for them or the chain proved their transfer can never be mined.
// A reservation already settled or released (a replay, a reset) is skipped:
// it is never the basis of a new transfer.
//
// An operator's cancel request (the Web UI's Cancel) follows the same proof
// rules as a payment's: nothing can unsign a transfer, so everything runs on
// a context the cancel does not reach. The request is honoured only where
// the sweep would start something new (reserve, or sign a top-up or a token
// transfer): there it releases what it holds and has not signed, and ends
// cancelled (SweepStepCancelled). A transfer signed before the request is
// followed to the chain's verdict and booked as the chain decided first.
//
// Every wallet signs from its own nonce lane (the nonces table is keyed by
// sending address): a deposit wallet's sweep and the gas wallet's top-ups
// never queue behind, or hold up, the hot wallet's withdrawals.
//
// With Treasury set it is a treasury sweep (started by Treasury): the same
// steps move a hot tier's excess above its ceiling from a hot or collection
// wallet to the cold address (Collection), its reservation and steps named
// with the run's stamp.
func WalletSweep(ctx workflow.Context, in WalletSweepInput) (WalletSweepResult, error) {
	wfID := workflow.GetInfo(ctx).WorkflowExecution.ID
	res := WalletSweepResult{Address: strings.ToLower(in.Address)}
	// A deposit sweep's names are its workflow id's; a treasury sweep's
	// carry its run's stamp, since its workflow id is the same every run.
	flow, runSuffix, above := "sweep", "", "above their sweep thresholds"
	if in.Treasury != nil {
		flow, runSuffix, above = "treasury", "@"+in.Treasury.Stamp, "above the hot tier's ceiling"
	}
	reservationKey := func(sym string) string { return SweepReservationKey(wfID, sym) + runSuffix }
	topUpStep := gasTopUpStep + runSuffix
	show := &sweepStepper{address: res.Address}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (WalletSweepStatus, error) { return show.status, nil }); err != nil {
		return res, err
	}
	// cancelled is where an operator's cancel request shows; from here on
	// the sweep runs on ctx, which it does not reach (runs started before
	// this change let the request cancel whatever was in flight).
	cancelled := ctx
	safeCancel := workflow.GetVersion(ctx, sweepCancelChange, workflow.DefaultVersion, 1) == 1
	if safeCancel {
		ctx, _ = workflow.NewDisconnectedContext(ctx)
	}
	stopped := func() bool { return safeCancel && cancelled.Err() != nil }
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrFlow.ValueSet(flow), AttrAddress.ValueSet(res.Address),
		AttrChain.ValueSet(in.Chain))
	timeout := in.ConfirmTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
	cctx := workflow.WithActivityOptions(ctx, chainOpts)
	// release releases the reservations not yet closed (keys): their
	// transfers were not signed, or were proven never to pay. gas, when set,
	// is the decided transfer of keys[0], whose gas is charged with its
	// release.
	release := func(keys []string, gas ...*activities.ChargeInput) error {
		var err error
		for i, key := range keys {
			in := activities.ReleaseInput{Key: key}
			if i == 0 && len(gas) > 0 {
				in.Gas = gas[0]
			}
			if rerr := workflow.ExecuteActivity(lctx, a.ReleaseFunds, in).Get(ctx, nil); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return err
	}
	fail := func(keys []string, err error, gas ...*activities.ChargeInput) (WalletSweepResult, error) {
		err = errors.Join(err, release(keys, gas...))
		show.step(ctx, SweepStepFailed, errorMessage(err))
		return res, err
	}
	// stop ends the sweep on the operator's cancel request, releasing keys:
	// the reservations it holds for transfers it has not signed.
	stop := func(keys []string) (WalletSweepResult, error) {
		if err := release(keys); err != nil {
			show.step(ctx, SweepStepFailed, errorMessage(err))
			return res, err
		}
		show.step(ctx, SweepStepCancelled, fmt.Sprintf("cancelled by an operator: %d swept, %d released unsigned",
			len(res.Swept), len(keys)))
		return res, temporal.NewCanceledError(res)
	}

	show.step(ctx, SweepStepReserving, fmt.Sprintf("reserving %s %s on %s",
		strings.Join(in.Symbols, ","), above, res.Address))
	var items []activities.SweepItem
	var held []string
	for _, sym := range in.Symbols {
		if stopped() {
			return stop(held)
		}
		key := reservationKey(sym)
		rin := activities.SweepReserveInput{Key: key, WorkflowID: wfID, Address: res.Address, Symbol: sym,
			Threshold: in.Threshold, Collection: in.Collection}
		if in.Treasury != nil {
			rin.Treasury, rin.Ceiling = true, in.Treasury.Ceiling
		}
		var r activities.SweepReserveResult
		if err := workflow.ExecuteActivity(lctx, a.ReserveSweep, rin).Get(ctx, &r); err != nil {
			return fail(held, err)
		}
		if !r.Reserved {
			res.Skipped = append(res.Skipped, sym)
			continue
		}
		held = append(held, key)
		items = append(items, activities.SweepItem{Symbol: sym, Amount: r.Amount, FeeFromAmount: r.FeeFromAmount})
	}
	if len(items) == 0 {
		show.step(ctx, SweepStepNothing, "no balance "+above)
		return res, nil
	}

	var gas activities.SweepGasResult
	if err := workflow.ExecuteActivity(cctx, a.CheckSweepGas, activities.SweepGasInput{Address: res.Address,
		Collection: in.Collection, Items: items}).Get(ctx, &gas); err != nil {
		return fail(held, err)
	}
	if gas.TopUpWei != "0" {
		if in.GasWallet == "" {
			return fail(held, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s needs %s wei for gas and there is no gas wallet",
				in.Address, gas.NeedWei), activities.ErrTypeNoSweepTarget, nil))
		}
		if stopped() {
			return stop(held)
		}
		show.step(ctx, SweepStepGas, fmt.Sprintf("%s holds %s wei, needs %s: topping up %s wei from %s", in.Address,
			gas.HaveWei, gas.NeedWei, gas.TopUpWei, in.GasWallet))
		// A signed top-up is followed to the chain's verdict like any
		// transfer: given up on, it could still be mined and never be
		// booked, its value and gas held for ever. Runs from before this
		// change gave up after ConfirmTimeout.
		giveUp := time.Duration(0)
		if workflow.GetVersion(ctx, followTopUpChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			giveUp = timeout
		}
		out, err := runTransfer(ctx, transferSpec{Step: topUpStep, What: gas.TopUpWei + " wei of gas to " + res.Address,
			Sign: a.SignTopUp, SignInput: activities.TopUpInput{WorkflowID: wfID, Step: topUpStep, From: in.GasWallet,
				To: res.Address, Wei: gas.TopUpWei, Guard: held[0]},
			ReplaceAfter: timeout, GiveUpAfter: giveUp}, show)
		if err != nil {
			return res, err
		}
		res.TopUpTxHash = out.TxHash
		if out.Decided && workflow.GetVersion(ctx, bookTopUpChange, workflow.DefaultVersion, 1) == 1 {
			// The top-up's value leaves the gas wallet in the ledger and
			// reaches the deposit wallet, or goes back, as the chain decided.
			if err := workflow.ExecuteActivity(lctx, a.BookTopUp, activities.BookTopUpInput{WorkflowID: wfID,
				Step: topUpStep, To: res.Address, TxHash: out.TxHash, Paid: out.Paid}).Get(ctx, nil); err != nil {
				return res, err
			}
		}
		switch {
		case !out.Decided:
			return fail(held, temporal.NewNonRetryableApplicationError(out.Reason, ErrTypeGasTopUpTimeout, nil))
		case !out.Paid:
			return fail(held, temporal.NewNonRetryableApplicationError("gas top-up: "+out.Reason, ErrTypeSweepReverted, nil))
		}
	}

	for i, it := range items {
		if stopped() {
			return stop(held[i:])
		}
		key, step := held[i], sweepStep+it.Symbol+runSuffix
		show.step(ctx, SweepStepSweeping, fmt.Sprintf("sweeping %s %s from %s to %s", it.Amount.String(), it.Symbol,
			res.Address, in.Collection))
		out, err := runTransfer(ctx, transferSpec{Step: step,
			What: fmt.Sprintf("%s %s from %s to %s", it.Amount.String(), it.Symbol, res.Address, in.Collection),
			Sign: a.SignTransfer, SignInput: activities.TransferInput{WorkflowID: wfID, Step: step, Guard: key,
				Symbol: it.Symbol, From: res.Address, To: in.Collection, Amount: it.Amount, FeeFromAmount: it.FeeFromAmount},
			ReplaceAfter: timeout}, show)
		if err != nil {
			return res, err
		}
		gas := &activities.ChargeInput{WorkflowID: wfID, Step: step}
		if out.Signed {
			gas.TxHash = out.TxHash
		}
		if !out.Paid {
			return fail(held[i:], temporal.NewNonRetryableApplicationError("sweep: "+out.Reason, ErrTypeSweepReverted, nil), gas)
		}
		show.step(ctx, SweepStepSettling, "settling the ledger for "+out.TxHash)
		if err := workflow.ExecuteActivity(lctx, a.SettleFunds, activities.SettleInput{Key: key, TxHash: out.TxHash, Gas: gas}).
			Get(ctx, nil); err != nil {
			return res, err
		}
		// The collection is credited what reached it: all of it, or, when
		// the fee came from the amount, the rest at the output the chain
		// names (the reservation settled above held both).
		credit := activities.SweepCreditInput{WorkflowID: wfID, From: res.Address, Collection: in.Collection,
			Symbol: it.Symbol, Amount: it.Amount, TxHash: out.TxHash}
		swept := SweptToken{Symbol: it.Symbol, Amount: it.Amount, TxHash: out.TxHash, BlockNumber: out.BlockNumber}
		if it.FeeFromAmount && out.Received != "" {
			received, err := decimal.NewFromString(out.Received)
			if err != nil {
				return res, fmt.Errorf("the amount received by %s: %w", out.TxHash, err)
			}
			credit.Amount, credit.Position = protocol.NewAmount(received), &out.Position
			swept.Amount, swept.Fee = credit.Amount, it.Amount.Sub(received).String()
		}
		if err := workflow.ExecuteActivity(lctx, a.CreditSweep, credit).Get(ctx, nil); err != nil {
			return res, err
		}
		res.Swept = append(res.Swept, swept)
	}
	show.step(ctx, SweepStepSwept, fmt.Sprintf("swept %d token(s) from %s", len(res.Swept), res.Address))
	return res, nil
}

// Changes of WalletSweep, for workflow.GetVersion: sweepCancelChange runs
// the sweep out of reach of a cancel request, which it honours only before
// signing; followTopUpChange never gives up on a signed gas top-up.
const (
	sweepCancelChange = "sweep-cancel-after-proof"
	followTopUpChange = "sweep-follow-top-up"
)

// bookTopUpChange marks, for workflow.GetVersion, the BookTopUp step of a
// decided gas top-up.
const bookTopUpChange = "book-top-up"

// sweepStepper shows a wallet sweep's progress (see stepper); every step
// also sets PayflowStatus.
type sweepStepper struct {
	address string
	status  WalletSweepStatus
}

func (s *sweepStepper) tx(string) {}

func (s *sweepStepper) note(step, summary string) {
	s.status = WalletSweepStatus{Step: step, Summary: summary}
}

func (s *sweepStepper) step(ctx workflow.Context, step, summary string, attrs ...temporal.SearchAttributeUpdate) {
	s.note(step, summary)
	_ = workflow.UpsertTypedSearchAttributes(ctx, append(attrs, AttrStatus.ValueSet(step))...)
	workflow.GetLogger(ctx).Info("sweep step", "address", s.address, "step", step, "summary", summary)
}
