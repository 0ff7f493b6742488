package btc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"

	"github.com/btcsuite/btcd/btcjson"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/wire"

	"payflow/chain"
)

// SignRequest asks the signer (payflow-signer) for the signatures of one
// planned attempt: Packet is the unsigned PSBT, Reservation the held
// ledger reservation whose money it moves, From the paying wallet.
type SignRequest struct {
	Chain, WorkflowID, Step string
	Attempt                 int
	Reservation, From       string
	Packet                  *psbt.Packet
}

// PSBTSigner signs a planned attempt and returns the finalised transaction.
// A refusal (asking again changes nothing) wraps chain.ErrSignerRefused.
type PSBTSigner interface {
	SignPSBT(ctx context.Context, req SignRequest) (*wire.MsgTx, error)
}

// FeeConfig prices a chain's payments, in satoshis per virtual byte: Rate
// when the node has no estimate, MaxRate the most any attempt pays.
type FeeConfig struct {
	Rate, MaxRate int64
}

// maxAttempts bounds the replacements of one step (the original is 0).
const maxAttempts = 10

// Payments is a Bitcoin chain's payments behind the family-neutral
// contract: chain.Transfers, chain.Fees and chain.Balances. A transfer is
// planned (its coins reserved in the UTXO set, its PSBT built and stored),
// signed by payflow-signer, stored, and only then sent; a replacement is a
// new plan of the same inputs at a higher fee rate (BIP125), so exactly one
// attempt can ever be mined. Amounts are satoshis; the "gas" of a transfer
// is its virtual size and the fee per unit of it is satoshis per virtual
// byte.
type Payments struct {
	chain   string
	c       *Client
	utxos   *UTXOs
	plans   *Plans
	signed  *SignedTxs
	spends  *Spends
	tracked *Tracked
	signer  PSBTSigner
	fees    FeeConfig
}

var (
	_ chain.Transfers = (*Payments)(nil)
	_ chain.Fees      = (*Payments)(nil)
	_ chain.Balances  = (*Payments)(nil)
)

// NewPayments returns the payments of chain name on node c. signer may be
// nil on a worker that only takes deposits: signing then fails.
func NewPayments(name string, db *sql.DB, c *Client, tracked *Tracked, signer PSBTSigner, fees FeeConfig) (*Payments, error) {
	if fees.Rate < 1 || fees.MaxRate < fees.Rate {
		return nil, fmt.Errorf("fee rates %d and %d satoshis per virtual byte: want 1 <= rate <= max", fees.Rate, fees.MaxRate)
	}
	return &Payments{chain: name, c: c, utxos: NewUTXOs(db, name), plans: NewPlans(db, name), signed: NewSignedTxs(db, name),
		spends: NewSpends(c), tracked: tracked, signer: signer, fees: fees}, nil
}

// Track has the Tracker follow txHash for workflowID.
func (p *Payments) Track(ctx context.Context, txHash, workflowID string, everyMilestone bool) error {
	return p.tracked.Track(ctx, txHash, workflowID, everyMilestone)
}

// coinKey is the key the step's inputs are held under in the UTXO set.
func coinKey(t chain.Transfer) string {
	if t.Reservation != "" {
		return t.Reservation
	}
	return "step:" + t.WorkflowID + "/" + t.Step
}

// Sign plans, signs and stores attempt 0 of the step once; a repeat
// returns what is stored. The coins are the paying wallet's spendable
// outputs, the largest first, enough for the amount and the fee at the
// current rate; the change returns to the wallet. Too few spendable coins
// is an error a retry may cure (a change output not yet confirmed).
func (p *Payments) Sign(ctx context.Context, t chain.Transfer) (chain.Signed, error) {
	if s, err := p.Stored(ctx, t.WorkflowID, t.Step); !errors.Is(err, chain.ErrNotSigned) {
		return s, err
	}
	plan, err := p.plans.Get(ctx, t.WorkflowID, t.Step, 0)
	if errors.Is(err, errNoPlan) {
		plan, err = p.plan(ctx, t)
	}
	if err != nil {
		return chain.Signed{}, err
	}
	return p.signPlan(ctx, plan)
}

// plan builds and stores attempt 0 of t.
func (p *Payments) plan(ctx context.Context, t chain.Transfer) (Plan, error) {
	sats, err := p.amount(t.Token, t.Units)
	if err != nil {
		return Plan{}, err
	}
	rate, err := p.rate(ctx)
	if err != nil {
		return Plan{}, err
	}
	key := coinKey(t)
	coins, err := p.utxos.Reserve(ctx, key, t.From, func(n int) int64 { return sats + int64(P2WPKHVSize(n, 2))*rate })
	if err != nil {
		return Plan{}, err
	}
	return p.build(ctx, Plan{WorkflowID: t.WorkflowID, Step: t.Step, Reservation: t.Reservation, CoinKey: key,
		From: t.From, To: t.To, Sats: sats, FeeRate: rate}, coins)
}

// build builds pl's transaction from coins at pl.FeeRate and stores the plan.
func (p *Payments) build(ctx context.Context, pl Plan, coins []UTXO) (Plan, error) {
	b, err := BuildPSBT(Spend{Inputs: coins, Outputs: []Output{{Address: pl.To, Sats: pl.Sats}}, Change: pl.From,
		FeeRate: pl.FeeRate}, p.c.Params())
	if err != nil {
		return Plan{}, err
	}
	pl.Packet, pl.Fee = b.Packet, b.Fee
	pl.VSize = P2WPKHVSize(len(b.Packet.UnsignedTx.TxIn), len(b.Packet.UnsignedTx.TxOut))
	return p.plans.Put(ctx, pl)
}

// amount checks a transfer's amount: the native coin only, at least the
// dust limit, in satoshis.
func (p *Payments) amount(token string, units *big.Int) (int64, error) {
	if token != "" {
		return 0, fmt.Errorf("%w: a Bitcoin chain has no token %s", chain.ErrBadAmount, token)
	}
	if units == nil || !units.IsInt64() || units.Int64() < DustLimit {
		return 0, fmt.Errorf("%w: %v satoshis: a Bitcoin output carries at least %d", chain.ErrBadAmount, units, DustLimit)
	}
	return units.Int64(), nil
}

// signPlan has the signer sign pl, checks it signed that very
// transaction, stores it and marks the coins spent by it.
func (p *Payments) signPlan(ctx context.Context, pl Plan) (chain.Signed, error) {
	if p.signer == nil {
		return chain.Signed{}, errors.New("no signer is configured for " + p.chain)
	}
	tx, err := p.signer.SignPSBT(ctx, SignRequest{Chain: p.chain, WorkflowID: pl.WorkflowID, Step: pl.Step, Attempt: pl.Attempt,
		Reservation: pl.Reservation, From: pl.From, Packet: pl.Packet})
	if err != nil {
		return chain.Signed{}, err
	}
	if got := tx.TxHash().String(); got != pl.TxID {
		return chain.Signed{}, fmt.Errorf("the signer returned transaction %s for planned %s", got, pl.TxID)
	}
	s, err := p.signed.Store(ctx, tx, SignedTx{WorkflowID: pl.WorkflowID, Step: pl.Step, Attempt: pl.Attempt,
		FeeRate: pl.FeeRate, Fee: pl.Fee})
	if err != nil {
		return chain.Signed{}, err
	}
	if err := p.utxos.Spend(ctx, pl.CoinKey, s.TxID); err != nil {
		return chain.Signed{}, err
	}
	s.From, s.VSize = pl.From, pl.VSize
	return signedOf(s), nil
}

func signedOf(s SignedTx) chain.Signed {
	return chain.Signed{WorkflowID: s.WorkflowID, Step: s.Step, Attempt: s.Attempt, TxHash: s.TxID, From: s.From,
		State: s.State, Gas: uint64(s.VSize), Raw: s.Raw}
}

// Stored returns the latest attempt stored for the step.
func (p *Payments) Stored(ctx context.Context, workflowID, step string) (chain.Signed, error) {
	atts, err := p.signed.Attempts(ctx, workflowID, step)
	if err != nil {
		return chain.Signed{}, err
	}
	return signedOf(atts[len(atts)-1]), nil
}

// Send hands the stored attempt to the node and records it sent. The
// node's refusal (an input spent, a fee too low to replace) is a
// *chain.NodeRefusal.
func (p *Payments) Send(ctx context.Context, s chain.Signed) error {
	st := SignedTx{TxID: s.TxHash, Raw: s.Raw}
	tx, err := st.Tx()
	if err != nil {
		return err
	}
	if _, err := p.c.Send(ctx, tx); err != nil {
		var rpcErr *btcjson.RPCError
		if errors.As(err, &rpcErr) {
			return &chain.NodeRefusal{Err: err}
		}
		return err
	}
	if s.State != "sent" {
		return p.signed.MarkSent(ctx, s.TxHash)
	}
	return nil
}

// Replace signs attempt number attempt of the step: the same inputs and
// payment at a higher fee rate (at least one satoshi per virtual byte and a
// quarter more than the last attempt's, or the node's rate when higher),
// once per number. An attempt already mined returns Signed.Mined.
func (p *Payments) Replace(ctx context.Context, workflowID, step string, attempt int) (chain.Signed, error) {
	atts, err := p.signed.Attempts(ctx, workflowID, step)
	if err != nil {
		return chain.Signed{}, err
	}
	if attempt < len(atts) {
		return signedOf(atts[attempt]), nil
	}
	if attempt != len(atts) {
		return chain.Signed{}, fmt.Errorf("attempt %d of %s/%s asked, %d stored", attempt, workflowID, step, len(atts))
	}
	if attempt >= maxAttempts {
		return chain.Signed{}, fmt.Errorf("%s/%s: %w (%d)", workflowID, step, chain.ErrTooManyAttempts, maxAttempts)
	}
	first, err := p.plans.Get(ctx, workflowID, step, 0)
	if err != nil {
		return chain.Signed{}, err
	}
	coins, err := p.utxos.Held(ctx, first.CoinKey)
	if err != nil {
		return chain.Signed{}, err
	}
	if insp, err := p.spends.Inspect(ctx, txids(atts), coins, 1); err != nil {
		return chain.Signed{}, err
	} else if insp.State == SpendMined {
		return chain.Signed{WorkflowID: workflowID, Step: step, TxHash: insp.TxID, Mined: true}, nil
	}
	pl, err := p.plans.Get(ctx, workflowID, step, attempt)
	if errors.Is(err, errNoPlan) {
		last := atts[len(atts)-1]
		rate := max(last.FeeRate+1, last.FeeRate+last.FeeRate/4)
		if now, err := p.rate(ctx); err == nil {
			rate = max(rate, now)
		}
		if rate > p.fees.MaxRate {
			if last.FeeRate >= p.fees.MaxRate {
				return chain.Signed{}, fmt.Errorf("%s/%s pays %d satoshis per virtual byte already, the cap: %w", workflowID, step,
					last.FeeRate, chain.ErrFeeCapExceeded)
			}
			rate = p.fees.MaxRate
		}
		next := first
		next.Attempt, next.FeeRate = attempt, rate
		pl, err = p.build(ctx, next, coins)
		if err == nil && pl.Fee <= last.Fee {
			return chain.Signed{}, fmt.Errorf("%s/%s: a replacement at %d satoshis per virtual byte pays no more than %d: %w",
				workflowID, step, rate, last.Fee, chain.ErrFeeCapExceeded)
		}
	}
	if err != nil {
		return chain.Signed{}, err
	}
	return p.signPlan(ctx, pl)
}

func txids(atts []SignedTx) []string {
	out := make([]string, len(atts))
	for i, a := range atts {
		out[i] = a.TxID
	}
	return out
}

// Inspect tells what the node proves about every attempt of the step: one
// mined (always a success: a mined Bitcoin transaction paid its outputs),
// or dropped when every input is spent, confirmations deep, by a
// transaction that is none of them.
func (p *Payments) Inspect(ctx context.Context, workflowID, step string, confirmations uint64) (chain.Inspection, error) {
	atts, err := p.signed.Attempts(ctx, workflowID, step)
	if err != nil {
		return chain.Inspection{}, err
	}
	first, err := p.plans.Get(ctx, workflowID, step, 0)
	if err != nil {
		return chain.Inspection{}, err
	}
	coins, err := p.utxos.Held(ctx, first.CoinKey)
	if err != nil {
		return chain.Inspection{}, err
	}
	insp, err := p.spends.Inspect(ctx, txids(atts), coins, int64(max(confirmations, 1)))
	if err != nil {
		return chain.Inspection{}, err
	}
	last := atts[len(atts)-1].TxID
	switch insp.State {
	case SpendMined:
		return chain.Inspection{State: chain.TransferMined, TxHash: insp.TxID, BlockNumber: uint64(insp.Height), Succeeded: true}, nil
	case SpendDropped:
		return chain.Inspection{State: chain.TransferDropped, TxHash: last, Reason: insp.Reason}, nil
	}
	return chain.Inspection{State: chain.TransferPending, TxHash: last}, nil
}

// rate is the fee rate a first attempt pays now: the node's estimate
// (estimatefee, btcd's only estimator) when it has one, else the
// configured rate; ErrFeeCapExceeded when the estimate is above the cap.
func (p *Payments) rate(ctx context.Context) (int64, error) {
	est, err := call(ctx, func() (float64, error) { return p.c.rpc.EstimateFee(6) })
	if err != nil || est <= 0 {
		return p.fees.Rate, nil // no estimate: the node has seen too few blocks with fees
	}
	// BTC per kilobyte to satoshis per virtual byte, rounded up.
	rate := max(int64(est*1e5+0.999), 1)
	if rate > p.fees.MaxRate {
		return 0, fmt.Errorf("the node asks %d satoshis per virtual byte, above the cap %d: %w", rate, p.fees.MaxRate,
			chain.ErrFeeCapExceeded)
	}
	return max(rate, p.fees.Rate), nil
}

// Gas is the virtual size a payment of units from from would be signed
// with: its inputs counted as Sign would pick them now, plus one for a
// coin taken meanwhile by another payment, and two outputs.
func (p *Payments) Gas(ctx context.Context, token, from, _ string, units *big.Int) (uint64, error) {
	sats, err := p.amount(token, units)
	if err != nil {
		return 0, err
	}
	rate, err := p.rate(ctx)
	if err != nil {
		return 0, err
	}
	coins, err := p.utxos.Spendable(ctx, from)
	if err != nil {
		return 0, err
	}
	n, sum := 0, int64(0)
	for _, c := range coins {
		n, sum = n+1, sum+c.Sats
		if sum >= sats+int64(P2WPKHVSize(n, 2))*rate {
			break
		}
	}
	return uint64(P2WPKHVSize(max(n, 1)+1, 2)), nil
}

// MaxFee is the fee rate a first attempt pays now, in satoshis per virtual
// byte.
func (p *Payments) MaxFee(ctx context.Context) (*big.Int, error) {
	r, err := p.rate(ctx)
	if err != nil {
		return nil, err
	}
	return big.NewInt(r), nil
}

// Simulate has nothing to run: a Bitcoin chain has no tokens.
func (p *Payments) Simulate(_ context.Context, token, _, _ string, _ *big.Int) error {
	if token != "" {
		return fmt.Errorf("%w: a Bitcoin chain has no token %s", chain.ErrBadAmount, token)
	}
	return nil
}

// Paid is the fee the stored attempt txHash paid, and whether it is mined
// on the best chain.
func (p *Payments) Paid(ctx context.Context, txHash string) (*big.Int, bool, error) {
	s, err := p.signed.ByTxID(ctx, txHash)
	if errors.Is(err, chain.ErrNotSigned) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	tx, err := s.Tx()
	if err != nil {
		return nil, false, err
	}
	_, _, mined, err := minedAt(ctx, p.c, tx.TxHash())
	if err != nil || !mined {
		return nil, false, err
	}
	return big.NewInt(s.Fee), true, nil
}

// Balance is owner's confirmed coins in the UTXO set (spendable and
// reserved), which reconciliation compares with the node.
func (p *Payments) Balance(ctx context.Context, token, owner string, _ *big.Int) (*big.Int, error) {
	if token != "" {
		return nil, fmt.Errorf("%w: a Bitcoin chain has no token %s", chain.ErrBadAmount, token)
	}
	confirmed, _, err := p.utxos.Balance(ctx, owner)
	if err != nil {
		return nil, err
	}
	return big.NewInt(confirmed), nil
}

// RequireToken refuses any token: a Bitcoin chain has none.
func (p *Payments) RequireToken(_ context.Context, token, _ string, _ *big.Int) error {
	if token != "" {
		return fmt.Errorf("%w: a Bitcoin chain has no token %s", chain.ErrBadAmount, token)
	}
	return nil
}
