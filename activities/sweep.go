package activities

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/shopspring/decimal"

	"payflow/chain"
	"payflow/ledger"
	"payflow/protocol"
)

// ErrTypeNoSweepTarget: there is no collection wallet to sweep into, or no
// gas wallet to top deposit wallets up from.
const ErrTypeNoSweepTarget = "NoSweepTarget"

// SweepPlanInput asks for one page of deposit wallets to sweep.
type SweepPlanInput struct {
	Symbols []string // empty = every configured token and the native coin
	// Threshold is the sweep threshold of an asset with none of its own
	// (config from before per-asset thresholds); an asset's own
	// sweep_threshold always wins. Available strictly above it is swept.
	Threshold protocol.Amount
	Addresses []string // empty = every deposit wallet
	After     string   // the previous page's Next
	Limit     int
}

// SweepCandidate is a deposit wallet with the symbols it holds above their
// sweep thresholds.
type SweepCandidate struct {
	Address string
	Symbols []string // sorted
}

// SweepPlan is one page of candidates and where their tokens and gas go.
type SweepPlan struct {
	Chain      string
	Collection string // the wallet swept into
	GasWallet  string // pays deposit wallets' gas; "" when there is none
	Candidates []SweepCandidate
	Next       string // "" when this was the last page
}

// PlanSweep lists, in address order, the deposit wallets payflow holds the key
// of whose available ledger balance of a symbol is strictly above that
// symbol's sweep threshold (sweepThreshold), and names the collection wallet (the configured one, else the
// first of kind collection) and the gas wallet (the first of kind gas with a
// key). No collection wallet fails with ErrTypeNoSweepTarget.
func (a *Activities) PlanSweep(ctx context.Context, in SweepPlanInput) (SweepPlan, error) {
	collection, err := a.collection(ctx)
	if err != nil {
		return SweepPlan{}, err
	}
	plan := SweepPlan{Chain: a.Chain, Collection: collection}
	gas, err := a.Wallets.List(ctx, a.Chain, ledger.KindGas)
	if err != nil {
		return SweepPlan{}, err
	}
	for _, w := range gas {
		if w.HasKey {
			plan.GasWallet = w.Address
			break
		}
	}
	symbols := in.Symbols
	if len(symbols) == 0 {
		symbols = a.symbols() // tokens and the native coin
	}
	if len(symbols) == 0 {
		return plan, nil // no tokens configured: nothing to sweep
	}
	// Each symbol against its own threshold, in its own units.
	above := make([]ledger.Threshold, 0, len(symbols))
	for _, s := range symbols {
		asset, ok := a.Assets.Asset(s)
		if !ok {
			return SweepPlan{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("unknown symbol %q", s))
		}
		threshold, err := a.sweepThreshold(asset.Symbol, in.Threshold)
		if err != nil {
			return SweepPlan{}, err
		}
		above = append(above, ledger.Threshold{Symbol: s, Amount: threshold})
	}
	limit := in.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	held, err := a.Ledger.DepositWalletsAbove(ctx, ledger.SweepQuery{Chain: a.Chain, Above: above,
		Addresses: in.Addresses, After: in.After, Limit: limit})
	if err != nil {
		return SweepPlan{}, err
	}
	for _, h := range held {
		plan.Candidates = append(plan.Candidates, SweepCandidate{Address: h.Address, Symbols: h.Symbols})
	}
	if len(plan.Candidates) == limit {
		plan.Next = plan.Candidates[limit-1].Address
	}
	return plan, nil
}

// collection is the wallet sweeps collect into: the configured one, else
// the chain's first wallet of kind collection (ErrTypeNoSweepTarget when it
// has none).
func (a *Activities) collection(ctx context.Context) (string, error) {
	if a.Collection != "" {
		return strings.ToLower(a.Collection), nil
	}
	ws, err := a.Wallets.List(ctx, a.Chain, ledger.KindCollection)
	if err != nil {
		return "", err
	}
	if len(ws) == 0 {
		return "", permanent(ErrTypeNoSweepTarget, fmt.Errorf("no collection wallet on %s", a.Chain))
	}
	return ws[0].Address, nil
}

// SweepReserveInput holds a deposit wallet's available balance of a symbol
// for a sweep.
type SweepReserveInput struct {
	Key        string // the reservation's idempotency key
	WorkflowID string
	Address    string
	Symbol     string
	// Threshold: see SweepPlanInput (the asset's own threshold wins).
	Threshold protocol.Amount
	// Collection is the wallet the sweep pays (its plan's): the
	// reservation names it as its recipient. "": the one PlanSweep names.
	// For a treasury sweep, the cold address.
	Collection string `json:",omitempty"`
	// Treasury makes this a treasury sweep: Address is a hot or collection
	// wallet and what its hot tier holds above the asset's hot_ceiling (or
	// Ceiling, when positive) is reserved for the cold address (see
	// reserveTreasury). Threshold is then ignored.
	Treasury bool            `json:",omitempty"`
	Ceiling  protocol.Amount `json:",omitempty"`
}

// SweepReserveResult says what was reserved.
type SweepReserveResult struct {
	Reserved bool
	// Closed: the reservation under Key exists and was settled or released
	// already; nothing is reserved and nothing may be sent for it.
	Closed bool
	Amount protocol.Amount // reserved; or the available balance when it was not above the threshold
}

// sweepThreshold is the available balance of symbol above which a deposit
// wallet is swept, in the symbol's units: override when it is positive (a
// run of that one symbol with its own threshold: see
// workflows.SweepInput.Threshold), else the asset's own sweep_threshold. An
// asset without one, or with one that does not parse, fails with
// ErrTypeInvalidRequest (config validation refuses both first).
func (a *Activities) sweepThreshold(symbol string, override protocol.Amount) (decimal.Decimal, error) {
	asset, ok := a.Assets.Asset(symbol)
	if !ok {
		return decimal.Decimal{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("unknown symbol %q", symbol))
	}
	if override.IsPositive() {
		return override.Decimal, nil
	}
	if asset.SweepThreshold == "" {
		return decimal.Decimal{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("%s on %s has no sweep_threshold", asset.Symbol, a.Chain))
	}
	d, err := decimal.NewFromString(asset.SweepThreshold)
	if err != nil || d.IsNegative() {
		return decimal.Decimal{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("sweep_threshold %q of %s on %s is not an amount",
			asset.SweepThreshold, asset.Symbol, a.Chain))
	}
	return d, nil
}

// ReserveSweep reserves the wallet's whole available balance of the symbol
// under Key, so the user cannot spend what is being swept, if it is above
// the symbol's sweep threshold (sweepThreshold); otherwise it reserves nothing. Only a deposit wallet payflow
// holds the key of can be swept (ErrTypeUnknownWallet). The reservation
// names the collection wallet as its recipient. A repeat returns the
// reservation already made under Key, whatever the balance is now. With
// Treasury set it reserves a hot tier's excess for the cold address
// instead (reserveTreasury).
func (a *Activities) ReserveSweep(ctx context.Context, in SweepReserveInput) (SweepReserveResult, error) {
	if r, err := a.Ledger.GetReservation(ctx, in.Key); err == nil {
		if r.State != "held" {
			// Settled or released: this symbol's sweep decided its outcome
			// (a replay or a reset); it must never be the basis of a new
			// transfer.
			return SweepReserveResult{Closed: true, Amount: protocol.NewAmount(r.Amount)}, nil
		}
		return SweepReserveResult{Reserved: true, Amount: protocol.NewAmount(r.Amount)}, nil
	} else if !errors.Is(err, ledger.ErrReservationNotFound) {
		return SweepReserveResult{}, err
	}
	if in.Treasury {
		return a.reserveTreasury(ctx, in)
	}
	w, err := a.Wallets.Get(ctx, a.Chain, in.Address)
	if errors.Is(err, ledger.ErrWalletNotFound) || (err == nil && (!w.HasKey || w.Kind != ledger.KindDeposit)) {
		return SweepReserveResult{}, permanent(ErrTypeUnknownWallet,
			fmt.Errorf("%s is not a deposit wallet payflow holds the key of on %s", in.Address, a.Chain))
	}
	if err != nil {
		return SweepReserveResult{}, err
	}
	threshold, err := a.sweepThreshold(in.Symbol, in.Threshold)
	if err != nil {
		return SweepReserveResult{}, err
	}
	recipient := strings.ToLower(in.Collection)
	if recipient == "" {
		if recipient, err = a.collection(ctx); err != nil {
			return SweepReserveResult{}, err
		}
	}
	// The balance may move between the read and the reservation (a deposit,
	// a withdrawal): read again and retry a few times.
	for attempt := 0; attempt < 5; attempt++ {
		b, err := a.Ledger.Balance(ctx, a.Chain, w.Address, in.Symbol)
		if err != nil {
			return SweepReserveResult{}, err
		}
		if !b.Available.GreaterThan(threshold) {
			return SweepReserveResult{Amount: protocol.NewAmount(b.Available)}, nil
		}
		amount := b.Available
		if in.Symbol == a.Assets.Native.Symbol {
			// The native coin is swept less what the wallet's sweeps may
			// spend on gas: that stays, and pays them.
			keep, err := a.sweepGasKeep(ctx, w.Address)
			if err != nil {
				return SweepReserveResult{}, err
			}
			if amount = amount.Sub(keep); amount.Sign() <= 0 {
				return SweepReserveResult{Amount: protocol.NewAmount(b.Available)}, nil
			}
		}
		_, err = a.Ledger.Reserve(ctx, ledger.ReserveInput{QueueID: in.Key, Chain: a.Chain, Address: w.Address,
			Symbol: in.Symbol, Amount: amount, WorkflowID: in.WorkflowID, Recipient: recipient})
		switch {
		case err == nil:
			return SweepReserveResult{Reserved: true, Amount: protocol.NewAmount(amount)}, nil
		case errors.Is(err, ledger.ErrInsufficientFunds):
			continue
		case errors.Is(err, ledger.ErrReservationMismatch):
			// A concurrent attempt of this activity reserved first: use its amount.
			r, err := a.Ledger.GetReservation(ctx, in.Key)
			if err != nil {
				return SweepReserveResult{}, err
			}
			return SweepReserveResult{Reserved: true, Amount: protocol.NewAmount(r.Amount)}, nil
		default:
			return SweepReserveResult{}, classify(err)
		}
	}
	return SweepReserveResult{}, fmt.Errorf("reserving %s of %s: the balance kept changing", in.Symbol, w.Address)
}

// sweepGasKeep is the native coin a deposit wallet keeps when its native
// coin is swept: the gas budget (gas limit at the chain's fee cap, what
// SignTransfer holds) of the native sweep and of a sweep of every token the
// ledger holds above that token's own sweep threshold for it.
func (a *Activities) sweepGasKeep(ctx context.Context, address string) (decimal.Decimal, error) {
	from, to := address, a.Collection
	gas, err := a.Fees.Gas(ctx, "", from, to, big.NewInt(1))
	if err != nil {
		return decimal.Decimal{}, classify(err)
	}
	for _, sym := range a.Assets.Symbols() {
		if _, isToken := a.Assets.Tokens[sym]; !isToken {
			continue
		}
		threshold, err := a.sweepThreshold(sym, protocol.Amount{}) // each token's own: the run's threshold is another asset's
		if err != nil {
			return decimal.Decimal{}, err
		}
		b, err := a.Ledger.Balance(ctx, a.Chain, address, sym)
		if err != nil {
			return decimal.Decimal{}, err
		}
		if !b.Available.GreaterThan(threshold) {
			continue
		}
		g, err := a.Fees.Gas(ctx, a.Assets.Tokens[sym].Address, from, to, big.NewInt(1))
		if err != nil {
			// The node cannot estimate it (the chain holds less than the
			// ledger: reconciliation reports that): keep a ceiling.
			g = tokenTransferGasCeiling
		}
		gas += g
	}
	wei := new(big.Int).Mul(new(big.Int).SetUint64(gas), a.Assets.FeeCap())
	return chain.FromUnits(wei, a.Assets.NativeScale()), nil
}

// tokenTransferGasCeiling is kept for a token sweep whose gas the node
// cannot estimate; a standard ERC20 transfer uses well under it.
const tokenTransferGasCeiling = 150_000

// SweepItem is one token amount to sweep.
type SweepItem struct {
	Symbol string
	Amount protocol.Amount
}

// SweepGasInput asks whether a deposit wallet can pay the gas of its sweep.
type SweepGasInput struct {
	Address    string
	Collection string
	Items      []SweepItem
}

// SweepGasResult compares what the sweep transfers may cost with what the
// wallet holds. Amounts are wei, as decimal strings.
type SweepGasResult struct {
	NeedWei  string
	HaveWei  string
	TopUpWei string // "0" when the wallet can pay
}

// CheckSweepGas estimates the most the wallet's sweep transfers may cost (the
// gas SignTransfer holds for each: its gas limit at the chain's fee cap) and,
// if it holds less (on chain or in the ledger, whichever is less), how much to
// top it up with: the need less what it has (no fee rise can exceed the cap,
// so nothing more is needed). A wallet
// holding fewer tokens on chain than an item fails with
// ErrTypeInsufficientFunds (the ledger and the chain disagree: reconcile).
func (a *Activities) CheckSweepGas(ctx context.Context, in SweepGasInput) (SweepGasResult, error) {
	from, to := in.Address, in.Collection
	need := new(big.Int)
	for _, it := range in.Items {
		if strings.EqualFold(it.Symbol, a.Assets.Native.Symbol) {
			// Its own gas was kept back when it was reserved (sweepGasKeep).
			gas, err := a.Fees.Gas(ctx, "", from, to, big.NewInt(1))
			if err != nil {
				return SweepGasResult{}, classify(err)
			}
			need.Add(need, new(big.Int).Mul(new(big.Int).SetUint64(gas), a.Assets.FeeCap()))
			continue
		}
		tok, ok := a.Assets.Tokens[strings.ToUpper(it.Symbol)]
		if !ok {
			return SweepGasResult{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("unknown symbol %q", it.Symbol))
		}
		units, err := chain.ToUnits(it.Amount.Decimal, tok.Decimals)
		if err != nil {
			return SweepGasResult{}, classify(err)
		}
		// A transfer the wallet cannot cover would make the estimate fail
		// (revert) on every retry: refuse it here, as SignTransfer would.
		bal, err := a.Balances.Balance(ctx, tok.Address, from, nil)
		if err != nil {
			return SweepGasResult{}, err
		}
		if bal.Cmp(units) < 0 {
			return SweepGasResult{}, permanent(ErrTypeInsufficientFunds, fmt.Errorf("%s holds %s %s units on chain, the ledger %s %s: %w",
				in.Address, bal, it.Symbol, it.Amount.String(), it.Symbol, chain.ErrInsufficientToken))
		}
		// What SignTransfer holds for the gas (reserveGas): the gas limit at
		// the chain's fee cap.
		gas, err := a.Fees.Gas(ctx, tok.Address, from, to, units)
		if err != nil {
			return SweepGasResult{}, classify(err)
		}
		need.Add(need, new(big.Int).Mul(new(big.Int).SetUint64(gas), a.Assets.FeeCap()))
	}
	have, err := a.Balances.Balance(ctx, "", from, nil)
	if err != nil {
		return SweepGasResult{}, err
	}
	if native := a.Assets.Native.Symbol; native != "" {
		// The ledger's native balance is what the gas is held from.
		b, err := a.Ledger.Balance(ctx, a.Chain, strings.ToLower(in.Address), native)
		if err != nil {
			return SweepGasResult{}, err
		}
		if units, err := chain.ToUnits(b.Available, a.Assets.NativeScale()); err == nil && units.Cmp(have) < 0 {
			have = units
		}
	}
	top := new(big.Int)
	if have.Cmp(need) < 0 {
		top.Sub(need, have)
	}
	return SweepGasResult{NeedWei: need.String(), HaveWei: have.String(), TopUpWei: top.String()}, nil
}

// TopUpInput is a native transfer from the gas wallet to a deposit wallet.
type TopUpInput struct {
	WorkflowID string
	Step       string
	From       string // the gas wallet
	To         string
	Wei        string // decimal
	// Guard is a reservation the top-up serves (see TransferInput.Guard).
	Guard string
}

// SignTopUp signs the gas top-up once (chain.Transfers.Sign) and
// stores it before anything is sent; Broadcast sends it. A repeat returns the
// stored transaction. A gas wallet that cannot pay fails with
// ErrTypeInsufficientGas.
func (a *Activities) SignTopUp(ctx context.Context, in TopUpInput) (TransferResult, error) {
	if r, ok, err := a.storedTransfer(ctx, in.WorkflowID, in.Step, in.Guard); err != nil || ok {
		return r, err
	}
	wei, ok := new(big.Int).SetString(in.Wei, 10)
	if !ok || wei.Sign() <= 0 {
		return TransferResult{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("top-up of %q wei", in.Wei))
	}
	native, _ := a.Assets.Asset(a.Assets.Native.Symbol)
	if native.Symbol != "" {
		// The top-up's value is the gas wallet's money: held until the chain
		// decides, then moved to the deposit wallet (BookTopUp).
		_, err := a.Ledger.Reserve(ctx, ledger.ReserveInput{QueueID: TopUpKey(in.WorkflowID, in.Step), Chain: a.Chain,
			Address: strings.ToLower(in.From), Symbol: native.Symbol, Amount: chain.FromUnits(wei, a.Assets.NativeScale()),
			WorkflowID: in.WorkflowID, Recipient: in.To})
		if errors.Is(err, ledger.ErrInsufficientFunds) {
			return TransferResult{}, permanent(ErrTypeInsufficientGas, fmt.Errorf("gas wallet %s cannot send %s wei: %w",
				in.From, in.Wei, chain.ErrInsufficientGas))
		}
		if err := classify(err); err != nil {
			return TransferResult{}, err
		}
	}
	if err := a.reserveGas(ctx, in.WorkflowID, in.Step, native, in.From, in.To, wei); err != nil {
		return TransferResult{}, err
	}
	// The signer pays it from the top-up's own reservation, not the guard.
	stx, err := a.Transfers.Sign(ctx, chain.Transfer{WorkflowID: in.WorkflowID, Step: in.Step, From: in.From, To: in.To,
		Units: wei, Reservation: TopUpKey(in.WorkflowID, in.Step)})
	if err != nil {
		return TransferResult{}, classify(err)
	}
	return transferResult(stx), nil
}

// TopUpKey is the reservation key of a gas top-up's value.
func TopUpKey(workflowID, step string) string { return "topup:" + workflowID + "/" + step }

// BookTopUpInput names a decided gas top-up (Paid: its value arrived).
type BookTopUpInput struct {
	WorkflowID, Step string
	To               string // the deposit wallet
	TxHash           string
	Paid             bool
}

// BookTopUp moves a decided top-up's value in the ledger: from the gas
// wallet's reservation to the deposit wallet (credited under the deposit key
// of a native transfer, (chain, tx_hash, chain.NativeLogIndex), so a listener
// that saw it credits nothing more), or back to the gas wallet when it did
// not pay. Repeats change nothing.
func (a *Activities) BookTopUp(ctx context.Context, in BookTopUpInput) error {
	if err := a.ChargeGas(ctx, ChargeInput{WorkflowID: in.WorkflowID, Step: in.Step, TxHash: in.TxHash}); err != nil {
		return err
	}
	key := TopUpKey(in.WorkflowID, in.Step)
	r, err := a.Ledger.GetReservation(ctx, key)
	if errors.Is(err, ledger.ErrReservationNotFound) {
		return nil // signed before top-ups were booked
	}
	if err != nil {
		return err
	}
	if !in.Paid {
		_, err := a.Ledger.Release(ctx, key)
		return classify(err)
	}
	if _, err := a.Ledger.Settle(ctx, key, in.TxHash); err != nil {
		return classify(err)
	}
	_, err = a.Ledger.Credit(ctx, ledger.CreditInput{Chain: a.Chain, Address: strings.ToLower(in.To), Symbol: r.Symbol,
		Amount: r.Amount, TxHash: in.TxHash, LogIndex: chain.NativeLogIndex, Reference: in.WorkflowID})
	return classify(err)
}

// SweepCreditInput credits the collection wallet with a confirmed sweep.
type SweepCreditInput struct {
	WorkflowID string
	From       string // the swept deposit wallet
	Collection string
	Symbol     string
	Amount     protocol.Amount
	TxHash     string
}

// CreditSweep finds the sweep's Transfer log in its receipt and credits the
// collection wallet once, keyed like any deposit by (chain, tx_hash, position
// of the log within the transaction) — so if the collection wallet is also
// watched, the listener's Deposit of the same log credits nothing more. A
// receipt without that log fails with ErrTypeInvalidRequest.
func (a *Activities) CreditSweep(ctx context.Context, in SweepCreditInput) error {
	if strings.EqualFold(in.Symbol, a.Assets.Native.Symbol) {
		return a.creditNativeSweep(ctx, in)
	}
	tok, ok := a.Assets.Tokens[strings.ToUpper(in.Symbol)]
	if !ok {
		return permanent(ErrTypeInvalidRequest, fmt.Errorf("unknown symbol %q", in.Symbol))
	}
	units, err := chain.ToUnits(in.Amount.Decimal, tok.Decimals)
	if err != nil {
		return classify(err)
	}
	moves, err := a.Reads.TokenTransfers(ctx, in.TxHash)
	if err != nil {
		return err
	}
	for _, m := range moves {
		if !strings.EqualFold(m.Token, tok.Address) || !strings.EqualFold(m.From, in.From) ||
			!strings.EqualFold(m.To, in.Collection) || m.Units.Cmp(units) != 0 {
			continue
		}
		_, err := a.Ledger.Credit(ctx, ledger.CreditInput{Chain: a.Chain, Address: in.Collection, Symbol: in.Symbol,
			Amount: in.Amount.Decimal, TxHash: in.TxHash, LogIndex: m.Position, Reference: in.WorkflowID})
		return classify(err)
	}
	return permanent(ErrTypeInvalidRequest, fmt.Errorf("%s has no Transfer of %s %s from %s to %s",
		in.TxHash, in.Amount.String(), in.Symbol, in.From, in.Collection))
}

// creditNativeSweep credits the collection wallet with a confirmed native
// sweep, keyed like a native deposit (chain, tx_hash, chain.NativeLogIndex).
// A transaction that is not that payment fails with ErrTypeInvalidRequest.
func (a *Activities) creditNativeSweep(ctx context.Context, in SweepCreditInput) error {
	units, err := chain.ToUnits(in.Amount.Decimal, a.Assets.NativeScale())
	if err != nil {
		return classify(err)
	}
	chk, _, err := a.depositOnChain(ctx, DepositRef{TxHash: in.TxHash, LogIndex: chain.NativeLogIndex, To: in.Collection,
		Units: units.String()})
	if err != nil {
		return err
	}
	if !chk.Present {
		return permanent(ErrTypeInvalidRequest, fmt.Errorf("%s does not pay %s %s to %s", in.TxHash, in.Amount.String(),
			in.Symbol, in.Collection))
	}
	_, err = a.Ledger.Credit(ctx, ledger.CreditInput{Chain: a.Chain, Address: in.Collection, Symbol: a.Assets.Native.Symbol,
		Amount: in.Amount.Decimal, TxHash: in.TxHash, LogIndex: chain.NativeLogIndex, Reference: in.WorkflowID})
	return classify(err)
}
