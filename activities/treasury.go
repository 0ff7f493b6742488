package activities

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/activity"

	"payflow/chain"
	"payflow/config"
	"payflow/ledger"
	"payflow/protocol"
)

// The hot tier of a chain and asset is what its wallets that pay hold
// available in the ledger: every hot wallet and collection wallet payflow
// holds the key of. Above the asset's hot_ceiling, the excess goes to the
// chain's cold address by a treasury sweep: a WalletSweep of one wallet and
// one asset whose reservation names the cold address as its recipient
// (ReserveSweep with Treasury set, see reserveTreasury).

// TreasuryPlanInput asks which hot tiers are above their ceilings.
type TreasuryPlanInput struct {
	// Symbols to look at; empty means every asset with a hot_ceiling.
	Symbols []string
	// Ceiling overrides the configured hot_ceiling of the one symbol a run
	// names (Symbols of length 1), in that symbol's units: an operator's
	// "keep X hot, send the rest to cold now". Ignored otherwise.
	Ceiling protocol.Amount
}

// TreasuryCandidate is one asset whose hot tier is above its ceiling, and
// the tier wallet its excess is taken from.
type TreasuryCandidate struct {
	Symbol  string
	Address string          // the tier wallet holding the most available
	Total   protocol.Amount // the tier's available balance
	Ceiling protocol.Amount
	Excess  protocol.Amount // Total - Ceiling: what the tier should send to cold
}

// TreasuryPlan lists the assets to sweep to cold, in symbol order.
type TreasuryPlan struct {
	Chain      string
	Cold       string // the chain's cold address
	GasWallet  string // tops a tier wallet up with gas; "" when there is none
	Candidates []TreasuryCandidate
}

// PlanTreasury lists the assets whose hot tier holds more available than
// their hot_ceiling (or the run's Ceiling), each with the tier wallet
// holding the most (of equals, the lowest address). An asset without a
// ceiling is left out. A chain without cold_address fails with
// ErrTypeNoSweepTarget when an asset is above its ceiling.
func (a *Activities) PlanTreasury(ctx context.Context, in TreasuryPlanInput) (TreasuryPlan, error) {
	plan := TreasuryPlan{Chain: a.Chain, Cold: strings.ToLower(a.Assets.ColdAddress)}
	gas, err := a.Wallets.List(ctx, a.Chain, ledger.KindGas)
	if err != nil {
		return TreasuryPlan{}, err
	}
	for _, w := range gas {
		if w.HasKey {
			plan.GasWallet = w.Address
			break
		}
	}
	symbols := in.Symbols
	if len(symbols) == 0 {
		symbols = a.symbols()
	}
	override := in.Ceiling
	if len(symbols) != 1 {
		override = protocol.Amount{}
	}
	for _, s := range symbols {
		asset, ok := a.Assets.Asset(s)
		if !ok {
			return TreasuryPlan{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("unknown symbol %q", s))
		}
		ceiling, ok := a.hotCeiling(asset, override)
		if !ok {
			continue
		}
		total, wallets, err := a.hotTier(ctx, asset.Symbol)
		if err != nil {
			return TreasuryPlan{}, err
		}
		if !total.GreaterThan(ceiling) || len(wallets) == 0 {
			continue
		}
		if plan.Cold == "" {
			return TreasuryPlan{}, permanent(ErrTypeNoSweepTarget, fmt.Errorf("the hot tier of %s on %s is above its ceiling and %s has no cold_address",
				asset.Symbol, a.Chain, a.Chain))
		}
		plan.Candidates = append(plan.Candidates, TreasuryCandidate{Symbol: asset.Symbol, Address: wallets[0].address,
			Total: protocol.NewAmount(total), Ceiling: protocol.NewAmount(ceiling), Excess: protocol.NewAmount(total.Sub(ceiling))})
	}
	sort.Slice(plan.Candidates, func(i, j int) bool { return plan.Candidates[i].Symbol < plan.Candidates[j].Symbol })
	return plan, nil
}

// hotCeiling is the asset's hot tier ceiling: override when it is positive,
// else the asset's hot_ceiling; ok is false when there is none.
func (a *Activities) hotCeiling(asset config.Asset, override protocol.Amount) (decimal.Decimal, bool) {
	if override.IsPositive() {
		return override.Decimal, true
	}
	return asset.Ceiling()
}

// tierWallet is a wallet of the hot tier and what it holds available.
type tierWallet struct {
	address   string
	available decimal.Decimal
}

// hotTier reads the hot tier of symbol: its total available balance and
// its wallets, the one holding the most first (of equals, the lowest
// address).
func (a *Activities) hotTier(ctx context.Context, symbol string) (decimal.Decimal, []tierWallet, error) {
	var total decimal.Decimal
	var out []tierWallet
	seen := map[string]bool{}
	for _, kind := range []ledger.WalletKind{ledger.KindHot, ledger.KindCollection} {
		ws, err := a.Wallets.List(ctx, a.Chain, kind)
		if err != nil {
			return decimal.Decimal{}, nil, err
		}
		for _, w := range ws {
			addr := strings.ToLower(w.Address)
			if !w.HasKey || seen[addr] {
				continue
			}
			seen[addr] = true
			b, err := a.Ledger.Balance(ctx, a.Chain, addr, symbol)
			if err != nil {
				return decimal.Decimal{}, nil, err
			}
			total = total.Add(b.Available)
			out = append(out, tierWallet{addr, b.Available})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].available.Cmp(out[j].available); c != 0 {
			return c > 0
		}
		return out[i].address < out[j].address
	})
	return total, out, nil
}

// reserveTreasury is ReserveSweep of a treasury sweep: it reserves, from a
// hot or collection wallet payflow holds the key of (else
// ErrTypeUnknownWallet), what the hot tier holds above the ceiling now,
// at most the wallet's own available balance; for the native coin, less the
// gas its transfer to the cold address may spend (the gas limit at the
// chain's fee cap), which stays and pays it. Amounts are truncated to the
// asset's decimals. The reservation names the cold address (in.Collection,
// else the chain's cold_address) as its recipient. At or below the ceiling,
// or with no ceiling, nothing is reserved.
func (a *Activities) reserveTreasury(ctx context.Context, in SweepReserveInput) (SweepReserveResult, error) {
	w, err := a.Wallets.Get(ctx, a.Chain, in.Address)
	if errors.Is(err, ledger.ErrWalletNotFound) || (err == nil && (!w.HasKey || (w.Kind != ledger.KindHot && w.Kind != ledger.KindCollection))) {
		return SweepReserveResult{}, permanent(ErrTypeUnknownWallet,
			fmt.Errorf("%s is not a hot or collection wallet payflow holds the key of on %s", in.Address, a.Chain))
	}
	if err != nil {
		return SweepReserveResult{}, err
	}
	asset, ok := a.Assets.Asset(in.Symbol)
	if !ok {
		return SweepReserveResult{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("unknown symbol %q", in.Symbol))
	}
	ceiling, ok := a.hotCeiling(asset, in.Ceiling)
	if !ok {
		return SweepReserveResult{}, nil
	}
	cold := strings.ToLower(in.Collection)
	if cold == "" {
		cold = strings.ToLower(a.Assets.ColdAddress)
	}
	if cold == "" {
		return SweepReserveResult{}, permanent(ErrTypeNoSweepTarget, fmt.Errorf("%s has no cold_address", a.Chain))
	}
	from := strings.ToLower(w.Address)
	var keep decimal.Decimal
	if asset.Native {
		gas, err := a.Fees.Gas(ctx, "", from, cold, big.NewInt(1))
		if err != nil {
			return SweepReserveResult{}, classify(err)
		}
		keep = chain.FromUnits(new(big.Int).Mul(new(big.Int).SetUint64(gas), a.Assets.FeeCap()), a.Assets.NativeScale())
	}
	// The tier may move between the read and the reservation (a payment, a
	// deposit sweep): read again and retry a few times.
	for attempt := 0; attempt < 5; attempt++ {
		total, wallets, err := a.hotTier(ctx, asset.Symbol)
		if err != nil {
			return SweepReserveResult{}, err
		}
		excess := total.Sub(ceiling)
		if excess.Sign() <= 0 {
			return SweepReserveResult{Amount: protocol.NewAmount(total)}, nil
		}
		var own decimal.Decimal
		for _, tw := range wallets {
			if tw.address == from {
				own = tw.available
			}
		}
		amount := decimal.Min(excess, own.Sub(keep)).Truncate(asset.Decimals)
		if amount.Sign() <= 0 {
			return SweepReserveResult{Amount: protocol.NewAmount(total)}, nil
		}
		_, err = a.Ledger.Reserve(ctx, ledger.ReserveInput{QueueID: in.Key, Chain: a.Chain, Address: from,
			Symbol: asset.Symbol, Amount: amount, WorkflowID: in.WorkflowID, Recipient: cold})
		switch {
		case err == nil:
			return SweepReserveResult{Reserved: true, Amount: protocol.NewAmount(amount)}, nil
		case errors.Is(err, ledger.ErrInsufficientFunds):
			continue
		case errors.Is(err, ledger.ErrReservationMismatch):
			r, err := a.Ledger.GetReservation(ctx, in.Key)
			if err != nil {
				return SweepReserveResult{}, err
			}
			return SweepReserveResult{Reserved: true, Amount: protocol.NewAmount(r.Amount)}, nil
		default:
			return SweepReserveResult{}, classify(err)
		}
	}
	return SweepReserveResult{}, fmt.Errorf("reserving %s of %s for cold: the balance kept changing", asset.Symbol, from)
}

// bookFromCold books the cold wallet's side of a confirmed transfer from one
// of the chain's cold wallets into a managed wallet (an operator's refill
// of the hot tier, signed outside payflow): the cold wallet is debited the
// amount (reservation "cold-out:" + the credit's deposit key, settled with
// the transaction) and, once per transaction, the fee it paid in the native
// coin ("cold-gas:<chain>:<tx_hash>"), so that its ledger follows the chain
// as the receiving wallet's does. A sender that is no cold wallet books
// nothing. Repeats change nothing. A cold wallet whose ledger does not hold
// that much (money that reached it unbooked) is left as it is and logged:
// reconciliation shows the difference.
func (a *Activities) bookFromCold(ctx context.Context, in CreditInput) error {
	if in.From == "" {
		return nil
	}
	w, err := a.Wallets.Get(ctx, in.Chain, in.From)
	if errors.Is(err, ledger.ErrWalletNotFound) || (err == nil && w.Kind != ledger.KindCold) {
		return nil
	}
	if err != nil {
		return err
	}
	from := strings.ToLower(w.Address)
	debit := func(key, symbol string, amount decimal.Decimal) error {
		if amount.Sign() <= 0 {
			return nil
		}
		_, err := a.Ledger.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: in.Chain, Address: from, Symbol: symbol,
			Amount: amount, WorkflowID: in.WorkflowID, Recipient: in.Address})
		if errors.Is(err, ledger.ErrInsufficientFunds) {
			activity.GetLogger(ctx).Error("cold wallet's ledger holds less than it sent; its side is not booked: reconcile it",
				"address", from, "symbol", symbol, "amount", amount.String(), "tx_hash", in.TxHash)
			return nil
		}
		if err != nil {
			return classify(err)
		}
		_, err = a.Ledger.Settle(ctx, key, in.TxHash)
		return classify(err)
	}
	if err := debit("cold-out:"+ledger.CreditKey(in.Chain, in.TxHash, in.LogIndex), in.Symbol, in.Amount.Decimal); err != nil {
		return err
	}
	fee, mined, err := a.Fees.Paid(ctx, in.TxHash)
	if err != nil {
		return err
	}
	if !mined || a.Assets.Native.Symbol == "" {
		return nil
	}
	return debit("cold-gas:"+in.Chain+":"+strings.ToLower(in.TxHash), a.Assets.Native.Symbol,
		chain.FromUnits(fee, a.Assets.NativeScale()))
}
