package btc

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/btcsuite/btcd/btcjson"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
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
	fees    *Fees
}

var (
	_ chain.Transfers = (*Payments)(nil)
	_ chain.Fees      = (*Fees)(nil)
	_ chain.Balances  = (*Balances)(nil)
)

// NewPayments returns the payments of chain name on node c, priced by
// fees. signer may be nil on a worker that only takes deposits: signing
// then fails.
func NewPayments(name string, db *sql.DB, c *Client, tracked *Tracked, signer PSBTSigner, fees *Fees) *Payments {
	return &Payments{chain: name, c: c, utxos: NewUTXOs(db, name), plans: NewPlans(db, name), signed: NewSignedTxs(db, name),
		spends: NewSpends(c), tracked: tracked, signer: signer, fees: fees}
}

// Fees prices a Bitcoin chain's payments (chain.Fees): the "gas" of a
// transfer is its virtual size, its price satoshis per virtual byte.
type Fees struct {
	c      *Client
	utxos  *UTXOs
	signed *SignedTxs
	cfg    FeeConfig
}

// NewFees returns the fees of chain name on node c.
func NewFees(name string, db *sql.DB, c *Client, cfg FeeConfig) (*Fees, error) {
	if cfg.Rate < 1 || cfg.MaxRate < cfg.Rate {
		return nil, fmt.Errorf("fee rates %d and %d satoshis per virtual byte: want 1 <= rate <= max", cfg.Rate, cfg.MaxRate)
	}
	return &Fees{c: c, utxos: NewUTXOs(db, name), signed: NewSignedTxs(db, name), cfg: cfg}, nil
}

// Balances reads a Bitcoin chain's balances (chain.Balances) from its UTXO
// set.
type Balances struct{ utxos *UTXOs }

// NewBalances returns the balances of chain name.
func NewBalances(db *sql.DB, name string) *Balances { return &Balances{utxos: NewUTXOs(db, name)} }

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
//
// A FeeFromAmount transfer (a sweep) spends coins worth exactly t.Units
// (ReserveExact: all the wallet's spendable coins when the ledger
// agrees with the set) to one output paying t.To their worth less the fee,
// with no change; coins that cannot make up t.Units are chain.ErrBadAmount.
func (p *Payments) Sign(ctx context.Context, t chain.Transfer) (chain.Signed, error) {
	if s, err := p.Stored(ctx, t.WorkflowID, t.Step); !errors.Is(err, chain.ErrNotSigned) {
		if err != nil {
			return chain.Signed{}, err
		}
		// A worker may have stopped between storing the attempt and marking
		// its coins spent: left reserved, they would count in the wallet's
		// balance for ever.
		return s, markSpent(ctx, p, s)
	}
	plan, err := p.plans.Get(ctx, t.WorkflowID, t.Step, 0)
	if errors.Is(err, errNoPlan) {
		plan, err = p.plan(ctx, t)
	}
	if err != nil {
		return chain.Signed{}, err
	}
	signed, err := p.signPlan(ctx, plan)
	if errors.Is(err, chain.ErrSignerRefused) {
		// Nothing is signed, and asking again changes nothing: the plan is
		// dropped and its coins go back to the wallet (a later try, after
		// a reset, plans anew).
		if ferr := forget(ctx, p, plan); ferr != nil {
			return chain.Signed{}, errors.Join(err, ferr)
		}
	}
	return signed, err
}

// forget drops the unsigned plan of attempt 0 and frees the coins it held
// (those reserved, not spent), in that order: a crash between the two
// leaves coins the next plan of the step takes again.
func forget(ctx context.Context, p *Payments, pl Plan) error {
	if err := p.plans.Delete(ctx, pl.WorkflowID, pl.Step, 0); err != nil {
		return err
	}
	_, err := p.utxos.Release(ctx, pl.CoinKey)
	return err
}

// plan builds and stores attempt 0 of t.
func (p *Payments) plan(ctx context.Context, t chain.Transfer) (Plan, error) {
	sats, err := amount(t.Token, t.Units)
	if err != nil {
		return Plan{}, err
	}
	rate, err := p.fees.rate(ctx)
	if err != nil {
		return Plan{}, err
	}
	key := coinKey(t)
	var coins []UTXO
	if t.FeeFromAmount {
		coins, err = ReserveExact(ctx, p.utxos, key, t.From, sats)
		if errors.Is(err, ErrCoinsDisagree) {
			err = fmt.Errorf("%w: %w", chain.ErrBadAmount, err)
		}
	} else {
		coins, err = p.utxos.Reserve(ctx, key, t.From, func(n int) int64 { return sats + int64(P2WPKHVSize(n, 2))*rate })
	}
	if err != nil {
		return Plan{}, err
	}
	for _, c := range coins {
		if c.State != UTXOSpent {
			continue
		}
		// Spent already: by this step, planned and signed meanwhile by
		// another try of it, or by another transfer under the same
		// reservation, which cannot pay twice (the node would keep one of
		// the two transactions, not payflow).
		if pl, err := p.plans.Get(ctx, t.WorkflowID, t.Step, 0); !errors.Is(err, errNoPlan) {
			return pl, err
		}
		return Plan{}, fmt.Errorf("the coins of %s are spent by %s already: a reservation pays one transfer", key, c.SpentTxID)
	}
	return p.build(ctx, Plan{WorkflowID: t.WorkflowID, Step: t.Step, Reservation: t.Reservation, CoinKey: key,
		From: t.From, To: t.To, Sats: sats, FeeFromAmount: t.FeeFromAmount, FeeRate: rate}, coins)
}

// build builds pl's transaction from coins at pl.FeeRate and stores the
// plan. A FeeFromAmount plan pays To all the coins less the fee of one
// input per coin and one output: no change, whatever the rate.
func (p *Payments) build(ctx context.Context, pl Plan, coins []UTXO) (Plan, error) {
	if pl.FeeFromAmount {
		var in int64
		for _, c := range coins {
			in += c.Sats
		}
		fee := int64(P2WPKHVSize(len(coins), 1)) * pl.FeeRate
		if pl.Sats = in - fee; pl.Sats < DustLimit {
			return Plan{}, fmt.Errorf("%w: %d satoshis in %d coins leave %d after a fee of %d at %d satoshis per virtual byte, below the dust limit",
				chain.ErrBadAmount, in, len(coins), pl.Sats, fee, pl.FeeRate)
		}
	}
	b, err := BuildPSBT(Spend{Inputs: coins, Outputs: []Output{{Address: pl.To, Sats: pl.Sats}}, Change: pl.From,
		FeeRate: pl.FeeRate}, p.c.Params())
	if err != nil {
		return Plan{}, err
	}
	if pl.FeeFromAmount && b.Change != 0 {
		return Plan{}, fmt.Errorf("spending %s's coins whole left %d satoshis of change", pl.From, b.Change)
	}
	pl.Packet, pl.Fee = b.Packet, b.Fee
	pl.VSize = P2WPKHVSize(len(b.Packet.UnsignedTx.TxIn), len(b.Packet.UnsignedTx.TxOut))
	return p.plans.Put(ctx, pl)
}

// amount checks a transfer's amount: the native coin only, at least the
// dust limit, in satoshis.
func amount(token string, units *big.Int) (int64, error) {
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
	s, err := signAndStore(ctx, p, pl)
	if err != nil {
		return chain.Signed{}, err
	}
	if err := p.utxos.Spend(ctx, pl.CoinKey, s.TxID); err != nil {
		return chain.Signed{}, err
	}
	s.From, s.VSize = pl.From, pl.VSize
	return signedOf(s), nil
}

// signAndStore has the signer sign pl, checks it signed that very
// transaction and stores it.
func signAndStore(ctx context.Context, p *Payments, pl Plan) (SignedTx, error) {
	if p.signer == nil {
		return SignedTx{}, errors.New("no signer is configured for " + p.chain)
	}
	tx, err := p.signer.SignPSBT(ctx, SignRequest{Chain: p.chain, WorkflowID: pl.WorkflowID, Step: pl.Step, Attempt: pl.Attempt,
		Reservation: pl.Reservation, From: pl.From, Packet: pl.Packet})
	if err != nil {
		return SignedTx{}, err
	}
	if got := tx.TxHash().String(); got != pl.TxID {
		return SignedTx{}, fmt.Errorf("the signer returned transaction %s for planned %s", got, pl.TxID)
	}
	return p.signed.Store(ctx, tx, SignedTx{WorkflowID: pl.WorkflowID, Step: pl.Step, Attempt: pl.Attempt,
		FeeRate: pl.FeeRate, Fee: pl.Fee})
}

// markSpent marks the coins of s's step spent by s (a repeat is
// harmless). An attempt stored without a plan has no coins to mark.
func markSpent(ctx context.Context, p *Payments, s chain.Signed) error {
	first, err := p.plans.Get(ctx, s.WorkflowID, s.Step, 0)
	if errors.Is(err, errNoPlan) {
		return nil
	}
	if err != nil {
		return err
	}
	return p.utxos.Spend(ctx, first.CoinKey, s.TxHash)
}

func signedOf(s SignedTx) chain.Signed {
	return chain.Signed{WorkflowID: s.WorkflowID, Step: s.Step, Attempt: s.Attempt, TxHash: s.TxID, From: s.From,
		State: s.State, Gas: uint64(s.VSize), Raw: s.Raw}
}

// known says whether the node knows any attempt of the step: mined or in
// its pool.
func known(ctx context.Context, p *Payments, workflowID, step string) (bool, error) {
	atts, err := p.signed.Attempts(ctx, workflowID, step)
	if err != nil {
		return false, err
	}
	for _, a := range atts {
		h, err := chainhash.NewHashFromStr(a.TxID)
		if err != nil {
			return false, err
		}
		if _, err := p.c.Tx(ctx, *h); err == nil {
			return true, nil
		} else if !IsNotFound(err) {
			return false, err
		}
	}
	return false, nil
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
// once per number, and sends it (stored first; a node's refusal is a
// *chain.NodeRefusal, the attempt stays stored and is sent again when the
// same number is asked again). An attempt already mined returns
// Signed.Mined.
func (p *Payments) Replace(ctx context.Context, workflowID, step string, attempt int) (chain.Signed, error) {
	atts, err := p.signed.Attempts(ctx, workflowID, step)
	if err != nil {
		return chain.Signed{}, err
	}
	if attempt < len(atts) {
		s := signedOf(atts[attempt])
		return s, p.Send(ctx, s)
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
		if now, err := p.fees.rate(ctx); err == nil {
			rate = max(rate, now)
		}
		if maxRate := p.fees.cfg.MaxRate; rate > maxRate {
			if last.FeeRate >= maxRate {
				return chain.Signed{}, fmt.Errorf("%s/%s pays %d satoshis per virtual byte already, the cap: %w", workflowID, step,
					last.FeeRate, chain.ErrFeeCapExceeded)
			}
			rate = maxRate
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
	s, err := p.signPlan(ctx, pl)
	if err != nil {
		return chain.Signed{}, err
	}
	return s, p.Send(ctx, s)
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
// transaction that is none of them. A mined FeeFromAmount step says what
// its coins were worth (Units) and what reached To (Received, Position):
// each attempt pays To less, at a higher fee.
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
		out := chain.Inspection{State: chain.TransferMined, TxHash: insp.TxID, BlockNumber: uint64(insp.Height), Succeeded: true}
		if first.FeeFromAmount {
			err = received(&out, atts, coins, first.To, p.c.Params())
		}
		return out, err
	case SpendDropped:
		return chain.Inspection{State: chain.TransferDropped, TxHash: last, Reason: insp.Reason}, nil
	}
	return chain.Inspection{State: chain.TransferPending, TxHash: last}, nil
}

// received fills a mined FeeFromAmount step's inspection: what its coins
// were worth, and the output of the mined attempt (one of atts) paying to
// on params' network.
func received(out *chain.Inspection, atts []SignedTx, coins []UTXO, to string, params *chaincfg.Params) error {
	var in int64
	for _, c := range coins {
		in += c.Sats
	}
	_, script, err := ParseAddress(to, params)
	if err != nil {
		return err
	}
	for _, a := range atts {
		if a.TxID != out.TxHash {
			continue
		}
		tx, err := a.Tx()
		if err != nil {
			return err
		}
		for i, o := range tx.TxOut {
			if bytes.Equal(o.PkScript, script) {
				out.Units, out.Received, out.Position = big.NewInt(in), big.NewInt(o.Value), uint(i)
				return nil
			}
		}
		return fmt.Errorf("mined attempt %s pays nothing to %s", a.TxID, to)
	}
	return fmt.Errorf("mined transaction %s is none of the step's attempts", out.TxHash)
}

// rate is the fee rate a first attempt pays now: the node's estimate
// (estimatefee, btcd's only estimator) when it has one, else the
// configured rate; ErrFeeCapExceeded when the estimate is above the cap.
func (f *Fees) rate(ctx context.Context) (int64, error) {
	est, err := call(ctx, func() (float64, error) { return f.c.rpc.EstimateFee(6) })
	if err != nil || est <= 0 {
		return f.cfg.Rate, nil // no estimate: the node has seen too few blocks with fees
	}
	// BTC per kilobyte to satoshis per virtual byte, rounded up.
	rate := max(int64(est*1e5+0.999), 1)
	if rate > f.cfg.MaxRate {
		return 0, fmt.Errorf("the node asks %d satoshis per virtual byte, above the cap %d: %w", rate, f.cfg.MaxRate,
			chain.ErrFeeCapExceeded)
	}
	return max(rate, f.cfg.Rate), nil
}

// Gas is the virtual size a payment of units from from would be signed
// with: its inputs counted as Sign would pick them now, plus one for a
// coin taken meanwhile by another payment, and two outputs.
func (f *Fees) Gas(ctx context.Context, token, from, _ string, units *big.Int) (uint64, error) {
	sats, err := amount(token, units)
	if err != nil {
		return 0, err
	}
	rate, err := f.rate(ctx)
	if err != nil {
		return 0, err
	}
	coins, err := f.utxos.List(ctx, from)
	if err != nil {
		return 0, err
	}
	n, sum := 0, int64(0)
	for _, c := range coins {
		if c.State != UTXOSpendable {
			continue
		}
		n, sum = n+1, sum+c.Sats
		if sum >= sats+int64(P2WPKHVSize(n, 2))*rate {
			break
		}
	}
	return uint64(P2WPKHVSize(max(n, 1)+1, 2)), nil
}

// MaxFee is the fee rate a first attempt pays now, in satoshis per virtual
// byte.
func (f *Fees) MaxFee(ctx context.Context) (*big.Int, error) {
	r, err := f.rate(ctx)
	if err != nil {
		return nil, err
	}
	return big.NewInt(r), nil
}

// Simulate has nothing to run: a Bitcoin chain has no tokens.
func (f *Fees) Simulate(_ context.Context, token, _, _ string, _ *big.Int) error {
	if token != "" {
		return fmt.Errorf("%w: a Bitcoin chain has no token %s", chain.ErrBadAmount, token)
	}
	return nil
}

// Paid is the fee the stored attempt txHash paid, and whether it is mined
// on the best chain.
func (f *Fees) Paid(ctx context.Context, txHash string) (*big.Int, bool, error) {
	s, err := f.signed.ByTxID(ctx, txHash)
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
	_, _, mined, err := minedAt(ctx, f.c, tx.TxHash())
	if err != nil || !mined {
		return nil, false, err
	}
	return big.NewInt(s.Fee), true, nil
}

// Balance is owner's confirmed coins in the UTXO set (spendable and
// reserved), which reconciliation compares with the node.
func (b *Balances) Balance(ctx context.Context, token, owner string, _ *big.Int) (*big.Int, error) {
	if token != "" {
		return nil, fmt.Errorf("%w: a Bitcoin chain has no token %s", chain.ErrBadAmount, token)
	}
	confirmed, _, err := b.utxos.Balance(ctx, owner)
	if err != nil {
		return nil, err
	}
	return big.NewInt(confirmed), nil
}

// RequireToken refuses any token: a Bitcoin chain has none.
func (b *Balances) RequireToken(_ context.Context, token, _ string, _ *big.Int) error {
	if token != "" {
		return fmt.Errorf("%w: a Bitcoin chain has no token %s", chain.ErrBadAmount, token)
	}
	return nil
}

// Rebroadcast sends again the latest attempt of every payment stored since
// since that the node no longer knows at all: not mined on its best chain,
// not in its pool. A btcd that restarts forgets its pool, and one killed
// forgets its last blocks (its database is written every few minutes), so
// a payment sent, or even mined and answered, can vanish from the node
// while its signed transaction stays valid: its inputs are unspent again.
// Sending it again puts it back; a node's refusal (an input spent by
// another attempt of the same payment, say) is skipped. It returns how
// many it sent.
func Rebroadcast(ctx context.Context, p *Payments, since time.Time) (int, error) {
	latest, err := p.signed.Latest(ctx, since)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range latest {
		if s.State != "sent" {
			continue // never accepted: its workflow sends it
		}
		known, err := known(ctx, p, s.WorkflowID, s.Step)
		if err != nil {
			return n, err
		}
		if known {
			continue
		}
		err = p.Send(ctx, signedOf(s))
		var refusal *chain.NodeRefusal
		if errors.As(err, &refusal) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
