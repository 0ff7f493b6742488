package activities

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/activity"

	"payflow/answers"
	"payflow/chain"
	"payflow/internal/metrics"
	"payflow/ledger"
	"payflow/protocol"
)

// ReserveInput asks to hold the amount of a payment.
type ReserveInput struct {
	// Key is the reservation's idempotency key: the workflow id, so a
	// withdraw and a pay may share a queue_id without colliding.
	Key         string
	Chain       string
	Symbol      string
	FromAddress string
	Amount      protocol.Amount
	// ToAddress is the payment's recipient: the reservation names it, and
	// the signer signs a transfer of the held money to it only.
	ToAddress string `json:",omitempty"`
}

// ReserveResult names the wallet that will pay.
type ReserveResult struct {
	PayingAddress string
	// made is the reservation this call made on the sender (nil: a replay,
	// or the collection wallet pays), for BeginPayment in the same
	// process; it never leaves it (unexported: not serialized).
	made *ledger.Reservation
}

// ReserveFunds checks that FromAddress is a wallet payflow holds the key of,
// and reserves the amount on it; if it cannot cover the amount, it reserves
// on the collection wallet instead. A replay returns the wallet reserved
// before while that reservation is held; a reservation that was settled or
// released is never handed out again (ErrTypeReservationClosed): its payment
// has decided its outcome, and a new transfer on it would pay twice.
func (a *Activities) ReserveFunds(ctx context.Context, in ReserveInput) (ReserveResult, error) {
	w, err := a.Wallets.Get(ctx, in.Chain, in.FromAddress)
	if errors.Is(err, ledger.ErrWalletNotFound) || (err == nil && !w.HasKey) {
		return ReserveResult{}, permanent(ErrTypeUnknownWallet,
			fmt.Errorf("from_address %s is not a wallet payflow manages on %s", in.FromAddress, in.Chain))
	}
	if err != nil {
		return ReserveResult{}, err
	}
	res := ledger.ReserveInput{QueueID: in.Key, Chain: in.Chain, Address: w.Address, Symbol: in.Symbol,
		Amount: in.Amount.Decimal, WorkflowID: in.Key, Recipient: in.ToAddress}
	// A new payment, the common case, reserves at once: the key makes the
	// reservation idempotent. A replay, a mismatch or a short sender is
	// then judged against the stored reservation.
	first, err := a.Ledger.Reserve(ctx, res)
	switch {
	case err == nil && !first.Replayed:
		return ReserveResult{PayingAddress: w.Address, made: &ledger.Reservation{QueueID: res.QueueID, Chain: res.Chain,
			Address: res.Address, Symbol: res.Symbol, State: "held", Amount: res.Amount, Recipient: res.Recipient}}, nil
	case err != nil && !errors.Is(err, ledger.ErrInsufficientFunds) && !errors.Is(err, ledger.ErrReservationMismatch):
		return ReserveResult{}, classify(err)
	}
	r, err := a.Ledger.GetReservation(ctx, in.Key)
	switch {
	case err == nil && r.State == "held":
		// A replay: whatever wallet was reserved before pays, but only for
		// the same money. A key reused for another chain, asset or amount
		// (a request rewritten under the same workflow id) is no replay.
		if err := sameReservation(r, in, w.Address, a.Collection); err != nil {
			return ReserveResult{}, permanent(ErrTypeReservationMismatch, err)
		}
		return ReserveResult{PayingAddress: r.Address}, nil
	case err == nil:
		return ReserveResult{}, permanent(ErrTypeReservationClosed,
			fmt.Errorf("payment %s was already %s: %w", in.Key, r.State, ledger.ErrReservationClosed))
	case !errors.Is(err, ledger.ErrReservationNotFound):
		return ReserveResult{}, err
	}
	_, err = a.Ledger.Reserve(ctx, res)
	if err == nil {
		return ReserveResult{PayingAddress: w.Address}, nil
	}
	if !errors.Is(err, ledger.ErrInsufficientFunds) || a.Collection == "" || strings.EqualFold(a.Collection, w.Address) {
		return ReserveResult{}, classify(err)
	}
	res.Address = strings.ToLower(a.Collection)
	if _, err2 := a.Ledger.Reserve(ctx, res); err2 != nil {
		if errors.Is(err2, ledger.ErrInsufficientFunds) {
			return ReserveResult{}, permanent(ErrTypeInsufficientFunds,
				fmt.Errorf("insufficient funds: neither %s nor the collection wallet can cover %s %s",
					w.Address, in.Amount.String(), in.Symbol))
		}
		return ReserveResult{}, classify(err2)
	}
	activity.GetLogger(ctx).Info("sender short; collection wallet pays", "queue_id", in.Key, "address", res.Address)
	return ReserveResult{PayingAddress: res.Address}, nil
}

// sameReservation checks that the held reservation r is the one in asks
// for: same chain, asset and amount, on the sender or the collection wallet,
// for the same recipient (when both name one).
func sameReservation(r ledger.Reservation, in ReserveInput, sender, collection string) error {
	switch {
	case !strings.EqualFold(r.Chain, in.Chain), !strings.EqualFold(r.Symbol, in.Symbol), !r.Amount.Equal(in.Amount.Decimal),
		!strings.EqualFold(r.Address, sender) && (collection == "" || !strings.EqualFold(r.Address, collection)):
		return fmt.Errorf("payment %s holds %s %s on %s from %s, not %s %s on %s from %s: %w", in.Key, r.Amount, r.Symbol,
			r.Chain, r.Address, in.Amount.String(), in.Symbol, in.Chain, in.FromAddress, ledger.ErrReservationMismatch)
	case r.Recipient != "" && in.ToAddress != "" && !strings.EqualFold(r.Recipient, in.ToAddress):
		return fmt.Errorf("payment %s holds %s %s for %s, not for %s: %w", in.Key, r.Amount, r.Symbol, r.Recipient,
			strings.ToLower(in.ToAddress), ledger.ErrReservationMismatch)
	}
	return nil
}

// BeginInput starts (or resumes) a payment: the reservation and the key of
// its answer.
type BeginInput struct {
	ReserveInput
	// AnswerID is the outbox message id of the payment's one answer.
	AnswerID string
	// ApprovalThreshold is the payment's approval threshold ("" none): a
	// payment above it is counted as held for approval.
	ApprovalThreshold string `json:",omitempty"`
}

// BeginResult is either the answer a payment already decided, or the wallet
// that pays it.
type BeginResult struct {
	// Answer is set when the payment decided its outcome before (a reset or
	// a replay of a payment that has answered): nothing may be signed or
	// sent, and the stored answer is the only one there will ever be.
	Answer        *protocol.PaymentResponse `json:",omitempty"`
	PayingAddress string
	// Velocity is set when the payment is over a velocity limit of its
	// asset: it waits for an operator's approval. (A result recorded by
	// an older worker has none.)
	Velocity *Velocity `json:",omitempty"`
}

// Velocity is a payment's verdict over a velocity limit: what its paying
// wallet would send and its recipient receive of the asset in 24 h with it,
// and the limits (in the asset's units; "" where there is none).
type Velocity struct {
	Wallet, Recipient           string
	OverWallet, OverRecipient   bool
	WalletTotal, RecipientTotal string
	WalletLimit, RecipientLimit string
}

// AboveThreshold says whether amount is strictly above threshold ("" or
// not a decimal: no threshold).
func AboveThreshold(amount protocol.Amount, threshold string) bool {
	if threshold == "" {
		return false
	}
	limit, err := decimal.NewFromString(threshold)
	return err == nil && amount.GreaterThan(limit)
}

// BeginPayment is a payment's first step and its gate: a payment whose answer
// is recorded returns it and does nothing else; otherwise the funds are
// reserved (ReserveFunds).
func (a *Activities) BeginPayment(ctx context.Context, in BeginInput) (BeginResult, error) {
	answer, err := a.recordedAnswer(ctx, in.AnswerID)
	if err != nil {
		return BeginResult{}, err
	}
	if answer != nil {
		activity.GetLogger(ctx).Info("payment already answered; nothing to do", "workflow_id", in.Key,
			"status", answer.Status)
		return BeginResult{Answer: answer}, nil
	}
	if err := a.screenBeforeReserving(ctx, in.ReserveInput); err != nil {
		return BeginResult{}, err
	}
	r, err := a.ReserveFunds(ctx, in.ReserveInput)
	if err != nil {
		return BeginResult{}, err
	}
	v, err := a.decideVelocity(ctx, in, r.made)
	if err != nil {
		return BeginResult{}, err
	}
	return BeginResult{PayingAddress: r.PayingAddress, Velocity: v}, nil
}

// decideVelocity decides once whether the payment's held reservation fits
// its asset's velocity limits (ledger.DecideVelocity, or DecideVelocityOf
// made, the reservation this call just made; a replay keeps the verdict)
// and returns the verdict when it is over. Every payment's
// decision is stored, limits or not: the signer checks it, and a limit set
// later counts the payments before it. A first decision counts the
// payment's reasons to wait for approval.
func (a *Activities) decideVelocity(ctx context.Context, in BeginInput, made *ledger.Reservation) (*Velocity, error) {
	asset, _ := a.Assets.Asset(in.Symbol)
	wl, rl := asset.VelocityLimits()
	limits := ledger.VelocityLimits{Wallet: wl, Recipient: rl}
	var d ledger.VelocityDecision
	var err error
	if made != nil {
		d, err = a.Ledger.DecideVelocityOf(ctx, *made, limits) // just reserved: nothing to read first
	} else {
		d, err = a.Ledger.DecideVelocity(ctx, in.Key, limits)
	}
	if err != nil {
		return nil, classify(err)
	}
	if !d.Replayed {
		if AboveThreshold(in.Amount, in.ApprovalThreshold) {
			a.Metrics.Held(a.Chain, metrics.HeldThreshold)
		}
		if d.OverWallet {
			a.Metrics.Held(a.Chain, metrics.HeldVelocityWallet)
		}
		if d.OverRecipient {
			a.Metrics.Held(a.Chain, metrics.HeldVelocityRecipient)
		}
	}
	if !d.Over() {
		return nil, nil
	}
	v := &Velocity{Wallet: d.Wallet, Recipient: d.Recipient, OverWallet: d.OverWallet, OverRecipient: d.OverRecipient,
		WalletTotal: d.WalletSum.Add(d.Amount).String(), RecipientTotal: d.RecipientSum.Add(d.Amount).String()}
	if d.WalletLimit.Sign() > 0 {
		v.WalletLimit = d.WalletLimit.String()
	}
	if d.RecipientLimit.Sign() > 0 {
		v.RecipientLimit = d.RecipientLimit.String()
	}
	activity.GetLogger(ctx).Info("payment over a velocity limit; it waits for approval", "workflow_id", in.Key,
		"address", d.Wallet, "over_wallet", d.OverWallet, "over_recipient", d.OverRecipient)
	return v, nil
}

// recordedAnswer returns the payment answer stored under id, or nil.
func (a *Activities) recordedAnswer(ctx context.Context, id string) (*protocol.PaymentResponse, error) {
	r, ok, err := a.answers().Get(ctx, id)
	if err != nil || !ok {
		return nil, err
	}
	var resp protocol.PaymentResponse
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		return nil, fmt.Errorf("decoding answer %s: %w", id, err)
	}
	return &resp, nil
}

// DecideInput records a payment's outcome.
type DecideInput struct {
	Flow protocol.Flow
	// Key is the reservation; "" when nothing was reserved.
	Key string
	// AnswerID is the outbox message id of the answer.
	AnswerID string
	// Answer is the response: status 1 settles the reservation with its
	// tx_hash, status 0 releases it.
	Answer protocol.PaymentResponse
	// WorkflowStart is when the payment's workflow started, for the
	// request→answer latency (zero: not measured).
	WorkflowStart time.Time `json:",omitempty"`
	// Gas names the payment's decided transfer, whose gas is charged first
	// (ChargeGas); nil when this run decided no transfer.
	Gas *ChargeInput `json:",omitempty"`
}

// DecidePayment records a payment's answer and closes its reservation in one
// database transaction: the answer is stored exactly when the money is
// settled (status 1) or released (status 0), so no replay, retry or reset can
// find one without the other. Repeating it changes nothing; the answer first
// recorded is kept. PublishResult then sends the stored answer.
func (a *Activities) DecidePayment(ctx context.Context, in DecideInput) error {
	body, err := json.Marshal(in.Answer)
	if err != nil {
		return permanent(ErrTypeInvalidRequest, err)
	}
	if _, ok := a.Responses[in.Flow]; !ok {
		return permanent(ErrTypeInvalidRequest, fmt.Errorf("no response queue for flow %q", in.Flow))
	}
	// inserted: the last (committed) run of record stored the answer; a
	// retry or a replay finds it there and counts nothing.
	inserted := false
	record := func(ctx context.Context, tx *sql.Tx) (err error) {
		inserted, err = answers.Record(ctx, tx, answers.Answer{MessageID: in.AnswerID, Flow: in.Flow, Body: body})
		return err
	}
	counted := func() {
		if inserted {
			a.Metrics.Payment(a.Chain, in.Flow, in.Answer.Status, in.WorkflowStart)
			if in.Answer.ReceivedAmount != nil {
				a.Metrics.ShortTransfer(a.Chain, in.Answer.Symbol)
			}
		}
	}
	if in.Key == "" {
		if err := a.chargeGas(ctx, in.Gas); err != nil {
			return err
		}
		tx, err := a.DB.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("storing answer %s: %w", in.AnswerID, err)
		}
		defer tx.Rollback()
		if err := record(ctx, tx); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		counted()
		return nil
	}
	if prev, err := a.recordedAnswer(ctx, in.AnswerID); err != nil || prev != nil {
		return err // decided before: keep that decision
	}
	op, txHash := ledger.OpRelease, ""
	if in.Answer.Status == protocol.StatusSucceeded {
		op, txHash = ledger.OpSettle, in.Answer.TxHash
	}
	// The transfer's gas is charged in the same database transaction as
	// the answer and the closing: none of the three without the others.
	var spends []ledger.Spend
	if in.Gas != nil {
		if spends, err = a.gasSpends(ctx, *in.Gas); err != nil {
			return err
		}
	}
	if _, err = a.Ledger.CloseWith(ctx, in.Key, txHash, op, spends, record); err != nil {
		return classify(err)
	}
	counted()
	return nil
}

// SettleInput settles a reservation after its transfer confirmed.
type SettleInput struct {
	Key    string
	TxHash string
	// Gas names the transfer whose gas is charged first (nil: none).
	Gas *ChargeInput `json:",omitempty"`
}

// SettleFunds debits the reservation. Idempotent.
func (a *Activities) SettleFunds(ctx context.Context, in SettleInput) error {
	if err := a.chargeGas(ctx, in.Gas); err != nil {
		return err
	}
	_, err := a.Ledger.Settle(ctx, in.Key, in.TxHash)
	return classify(err)
}

// ReleaseInput releases a reservation (compensation).
type ReleaseInput struct {
	Key string
	// Gas names the transfer whose gas is charged first (nil: none).
	Gas *ChargeInput `json:",omitempty"`
}

// ReleaseFunds returns the reservation to available. Idempotent; a missing
// reservation is fine (nothing was held). Callers release only what no
// transfer can still spend: before anything was signed, or once the chain
// proved the transfer can never be mined (InspectTransfer).
func (a *Activities) ReleaseFunds(ctx context.Context, in ReleaseInput) error {
	if err := a.chargeGas(ctx, in.Gas); err != nil {
		return err
	}
	_, err := a.Ledger.Release(ctx, in.Key)
	if errors.Is(err, ledger.ErrReservationNotFound) {
		return nil
	}
	return classify(err)
}

// TransferInput describes the one on-chain transfer of a payment.
type TransferInput struct {
	WorkflowID string
	Step       string
	// Guard is the reservation that pays for the transfer: nothing new is
	// signed unless it is held. A transfer already signed for (WorkflowID,
	// Step) is returned whatever the guard says: it is the same transfer.
	Guard  string
	Symbol string
	From   string
	To     string
	Amount protocol.Amount
	// FeeFromAmount signs a transfer whose fee is paid out of Amount (a
	// sweep on a chain whose sweeps do: see SweepReserveResult): no gas is
	// held apart, and To receives Amount less the fee.
	FeeFromAmount bool `json:",omitempty"`
}

// TransferResult identifies the signed (and later broadcast) transaction.
type TransferResult struct {
	TxHash string
	Nonce  uint64
	From   string
}

// SignTransfer checks token and gas balances and signs the transfer once,
// storing it before anything is sent. A repeat returns the stored one. A
// guard reservation that is no longer held fails with
// ErrTypeReservationClosed and signs nothing. The guard is the reservation
// the signer is asked to pay the transfer from; its refusal fails with
// ErrTypeSignerRefused.
func (a *Activities) SignTransfer(ctx context.Context, in TransferInput) (TransferResult, error) {
	if r, ok, err := a.storedTransfer(ctx, in.WorkflowID, in.Step, in.Guard); err != nil || ok {
		return r, err
	}
	// Listed since it was reserved (while it waited for approval, say):
	// refused here, and the payment releases its reservation.
	if err := a.screenRecipient(ctx, in.Guard, in.To); err != nil {
		return TransferResult{}, err
	}
	asset, ok := a.Assets.Asset(in.Symbol)
	if !ok {
		return TransferResult{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("%s is not a symbol of %s", in.Symbol, a.Chain))
	}
	units, err := chain.ToUnits(in.Amount.Decimal, asset.Decimals)
	if err != nil {
		return TransferResult{}, classify(err)
	}
	if !asset.Native {
		if err := a.checkTokenTransfer(ctx, in.WorkflowID, asset, in.From, in.To, units); err != nil {
			return TransferResult{}, err
		}
	}
	if !in.FeeFromAmount { // else the fee is part of the guard's amount
		if err := a.reserveGas(ctx, in.WorkflowID, in.Step, asset, in.From, in.To, units); err != nil {
			return TransferResult{}, err
		}
	}
	stx, err := a.Transfers.Sign(ctx, chain.Transfer{WorkflowID: in.WorkflowID, Step: in.Step, From: in.From, To: in.To,
		Token: tokenOf(asset), Units: units, Reservation: in.Guard, FeeFromAmount: in.FeeFromAmount,
		Simulated: !asset.Native}) // checkTokenTransfer ran it
	if err != nil {
		return TransferResult{}, classify(err)
	}
	a.signed.remember(stx)
	return transferResult(stx), nil
}

// storedTransfer returns the transfer already signed for (workflowID, step)
// with ok true, whatever guard says: it is the same transfer. With none
// stored, it fails unless the guard reservation is held (see requireHeld):
// a sign activity goes on only when both answers are false and nil.
func (a *Activities) storedTransfer(ctx context.Context, workflowID, step, guard string) (r TransferResult, ok bool, err error) {
	stx, err := a.Transfers.Stored(ctx, workflowID, step)
	switch {
	case err == nil:
		a.signed.remember(stx)
		return transferResult(stx), true, nil
	case errors.Is(err, chain.ErrNotSigned):
		return TransferResult{}, false, a.requireHeld(ctx, guard)
	default:
		return TransferResult{}, false, err
	}
}

// requireHeld fails with ErrTypeReservationClosed unless the reservation key
// is held ("" guards nothing).
func (a *Activities) requireHeld(ctx context.Context, key string) error {
	if key == "" {
		return nil
	}
	r, err := a.Ledger.GetReservation(ctx, key)
	if errors.Is(err, ledger.ErrReservationNotFound) {
		return permanent(ErrTypeReservationClosed, fmt.Errorf("nothing is reserved for %s: %w", key, err))
	}
	if err != nil {
		return err
	}
	if r.State != "held" {
		return permanent(ErrTypeReservationClosed, fmt.Errorf("the reservation of %s is %s: %w", key, r.State,
			ledger.ErrReservationClosed))
	}
	return nil
}

func transferResult(stx chain.Signed) TransferResult {
	return TransferResult{TxHash: stx.TxHash, Nonce: stx.Nonce, From: stx.From}
}

// BroadcastInput names the stored transaction to send.
type BroadcastInput struct {
	WorkflowID string
	Step       string
	// Flow and WorkflowStart measure a payment's request→broadcast latency
	// at its first broadcast (Flow "": not a payment, not measured).
	Flow          protocol.Flow `json:",omitempty"`
	WorkflowStart time.Time     `json:",omitempty"`
	// TxHash is the attempt the sign step returned: when this worker
	// remembers it, it is sent without reading the store ("": read it).
	TxHash string `json:",omitempty"`
}

// BroadcastResult says what the node made of the stored transaction.
type BroadcastResult struct {
	TxHash string
	// Refused is the node's reason for not taking the transaction (e.g. its
	// nonce is used, or its fee is too low). The transaction was signed and
	// may have reached other nodes before, so it is not a failure of the
	// transfer: the caller keeps waiting, and only InspectTransfer can prove
	// that the transfer will never be mined.
	Refused string `json:",omitempty"`
}

// Broadcast registers the stored transaction with the confirmation tracker,
// then sends its bytes. Sending again is harmless. Database and connection
// errors are returned for a retry; only a step with nothing signed is a
// permanent error.
func (a *Activities) Broadcast(ctx context.Context, in BroadcastInput) (BroadcastResult, error) {
	stx, ok := a.signed.take(in.WorkflowID, in.Step, in.TxHash)
	if !ok {
		var err error
		stx, err = a.Transfers.Stored(ctx, in.WorkflowID, in.Step)
		if errors.Is(err, chain.ErrNotSigned) {
			return BroadcastResult{}, permanent(ErrTypeInvalidRequest, err)
		}
		if err != nil {
			return BroadcastResult{}, err
		}
	}
	// Track before sending, so a confirmation can never be missed.
	if err := a.Transfers.Track(ctx, stx.TxHash, in.WorkflowID, false); err != nil {
		return BroadcastResult{}, err
	}
	res := BroadcastResult{TxHash: stx.TxHash}
	// The first broadcast of a transfer: its only attempt, never accepted.
	first := in.Flow != "" && a.Metrics != nil && stx.Attempt == 0 && stx.State == "signed"
	if err := a.Transfers.Send(ctx, stx); err != nil {
		if reason, refused := nodeRefusal(err); refused {
			activity.GetLogger(ctx).Warn("node refused the transfer; waiting for the chain", "workflow_id", in.WorkflowID,
				"tx_hash", stx.TxHash, "err", err)
			res.Refused = reason
			return res, nil
		}
		return BroadcastResult{}, err
	}
	if first {
		a.Metrics.Broadcast(a.Chain, in.Flow, in.WorkflowStart)
	}
	return res, nil
}

// nodeRefusal tells a node's answer about a transaction (its nonce is used,
// its fee is too low, …) from a failure to reach the node: the first is
// final for this send, the second is retried.
func nodeRefusal(err error) (string, bool) {
	if errors.Is(err, chain.ErrNonceTooLow) {
		return "its nonce was used by another transaction", true
	}
	var refusal *chain.NodeRefusal
	if errors.As(err, &refusal) {
		return "the node refused it: " + refusal.Error(), true
	}
	return "", false
}

// InspectInput names the transfer whose attempts to examine.
type InspectInput struct {
	WorkflowID string
	Step       string
}

// Inspection is what the chain proves about a transfer, all attempts together.
type Inspection struct {
	// State: "pending" (nothing proven), "mined" (an attempt has a receipt)
	// or "dropped" (proven never to be mined: its nonce is consumed, at the
	// configured depth, by a transaction that is none of its attempts).
	State       string
	TxHash      string // the mined attempt, else the latest
	BlockNumber uint64
	// Confirmed: mined at least Confirmations blocks deep. Only then is a
	// mined transfer the chain's verdict: a tx-event signal (which anyone
	// with access to Temporal can send) decides nothing by itself.
	Confirmed bool
	// Paid: mined, and the intended effect is in the receipt (for a token,
	// Transfer logs moving tokens from the sender to the recipient: all of
	// the amount, or less when the token takes a fee, see Received).
	Paid   bool
	Reason string // why not paid, in the business's words
	// Received is set when a paid token transfer moved fewer tokens to the
	// recipient than were sent (a token that takes a fee on transfer): the
	// amount received, in token units. The transfer is paid all the same.
	// For a native transfer whose fee came from its amount
	// (TransferInput.FeeFromAmount) it is what reached the recipient, in
	// the native coin, at Position (see chain.Inspection).
	Received string `json:",omitempty"`
	Position uint   `json:",omitempty"`
}

// InspectTransfer asks the chain about every attempt of a transfer (see
// chain.Transfers.Inspect).
func (a *Activities) InspectTransfer(ctx context.Context, in InspectInput) (Inspection, error) {
	insp, err := a.Transfers.Inspect(ctx, in.WorkflowID, in.Step, a.Confirmations)
	if errors.Is(err, chain.ErrNotSigned) {
		return Inspection{}, permanent(ErrTypeInvalidRequest, err)
	}
	if err != nil {
		return Inspection{}, err
	}
	out := Inspection{State: string(insp.State), TxHash: insp.TxHash, BlockNumber: insp.BlockNumber,
		Paid: insp.State == chain.TransferMined && insp.Succeeded, Reason: insp.Reason}
	if out.Paid && insp.Received != nil && insp.Token == "" {
		// Its fee came from its amount: the recipient got the rest.
		out.Received, out.Position = chain.FromUnits(insp.Received, a.Assets.NativeScale()).String(), insp.Position
	} else if out.Paid && insp.Received != nil && insp.Received.Cmp(insp.Units) < 0 {
		sym, t, ok := a.Assets.TokenByAddress(insp.Token)
		if !ok {
			sym, t.Decimals = insp.Token, 0
		}
		out.Received = chain.FromUnits(insp.Received, t.Decimals).String()
		activity.GetLogger(ctx).Warn("the token moved less to the recipient than was sent (a fee on transfer); paid",
			"workflow_id", in.WorkflowID, "tx_hash", out.TxHash, "symbol", sym,
			"sent", chain.FromUnits(insp.Units, t.Decimals).String(), "received", out.Received)
	}
	if insp.State == chain.TransferMined {
		head, err := a.Reads.Head(ctx)
		if err != nil {
			return Inspection{}, fmt.Errorf("reading head: %w", err)
		}
		out.Confirmed = head+1 >= insp.BlockNumber+max(a.Confirmations, 1)
	}
	return out, nil
}

// ReplaceInput asks for attempt Attempt of a stuck transfer.
type ReplaceInput struct {
	WorkflowID string
	Step       string
	// Attempt is the attempt the caller wants to exist (the original is 0).
	// A retry asks for the same number and gets the same transaction: a
	// replacement is signed once per number, never once per retry.
	Attempt int
}

// ReplaceResult is the outcome of ReplaceTransfer.
type ReplaceResult struct {
	TxHash  string
	Attempt int
	// Settled: the chain already decided (an attempt is mined, or the
	// transfer is proven dropped): nothing was signed; InspectTransfer says how.
	Settled bool
	// Stuck says why no replacement could be made (fee cap, too many
	// attempts, nonce taken and not yet proven); the caller waits on.
	Stuck string `json:",omitempty"`
}

// ReplaceTransfer replaces a stuck transfer on the same nonce at a higher fee
// and tracks the new hash, unless the chain has decided the transfer already.
func (a *Activities) ReplaceTransfer(ctx context.Context, in ReplaceInput) (ReplaceResult, error) {
	insp, err := a.InspectTransfer(ctx, InspectInput{WorkflowID: in.WorkflowID, Step: in.Step})
	if err != nil {
		return ReplaceResult{}, err
	}
	if insp.State != string(chain.TransferPending) {
		return ReplaceResult{TxHash: insp.TxHash, Settled: true}, nil
	}
	if err := a.holdReplacementGas(ctx, in.WorkflowID, in.Step); errors.Is(err, chain.ErrInsufficientGas) {
		return ReplaceResult{Stuck: err.Error()}, nil
	} else if err != nil {
		return ReplaceResult{}, err
	}
	stx, err := a.Transfers.Replace(ctx, in.WorkflowID, in.Step, in.Attempt)
	switch {
	case errors.Is(err, chain.ErrNonceTooLow):
		return ReplaceResult{Stuck: "its nonce was used by another transaction; waiting for the chain to prove it"}, nil
	case errors.Is(err, chain.ErrTooManyAttempts), errors.Is(err, chain.ErrFeeCapExceeded), errors.Is(err, chain.ErrInsufficientGas),
		errors.Is(err, chain.ErrSignerRefused):
		return ReplaceResult{Stuck: err.Error()}, nil
	case err != nil:
		if reason, refused := nodeRefusal(err); refused {
			return ReplaceResult{Stuck: reason}, nil
		}
		return ReplaceResult{}, err
	}
	if stx.Mined {
		return ReplaceResult{TxHash: stx.TxHash, Settled: true}, nil
	}
	if err := a.Transfers.Track(ctx, stx.TxHash, in.WorkflowID, false); err != nil {
		return ReplaceResult{}, err
	}
	return ReplaceResult{TxHash: stx.TxHash, Attempt: stx.Attempt}, nil
}

// PublishInput is one response to publish.
type PublishInput struct {
	Flow protocol.Flow
	// MessageID is stable per response: the outbox key and the AMQP message id.
	MessageID string
	Payment   *protocol.PaymentResponse `json:",omitempty"`
	Topup     *protocol.TopupResponse   `json:",omitempty"`
}

// PublishResult publishes a response at most once per MessageID: the body is
// recorded in the outbox first (a payment's answer, which DecidePayment
// records, only when it is not there), and a repeat after the broker
// confirmed it publishes nothing. What is published is the stored body, so
// a changed or reset workflow can never send a second version
// (answers.Outbox.Publish). An answer this step never gets to publish (its
// run terminated in between) is published by the answers relay.
func (a *Activities) PublishResult(ctx context.Context, in PublishInput) error {
	if _, ok := a.Responses[in.Flow]; !ok {
		return permanent(ErrTypeInvalidRequest, fmt.Errorf("no response queue for flow %q", in.Flow))
	}
	var body []byte
	var err error
	switch {
	case in.Payment != nil:
		body, err = json.Marshal(in.Payment)
	case in.Topup != nil:
		body, err = json.Marshal(in.Topup)
	default:
		return permanent(ErrTypeInvalidRequest, errors.New("empty response"))
	}
	if err != nil {
		return permanent(ErrTypeInvalidRequest, err)
	}
	out := a.answers()
	// A payment's answer is recorded with its decision (DecidePayment):
	// publish it straight away, recording it only if it is not there.
	first, err := false, answers.ErrNotRecorded
	if in.Payment != nil {
		first, err = out.Publish(ctx, in.Flow, in.MessageID)
	}
	if errors.Is(err, answers.ErrNotRecorded) {
		if _, err := out.Record(ctx, answers.Answer{MessageID: in.MessageID, Flow: in.Flow, Body: body}); err != nil {
			return err
		}
		first, err = out.Publish(ctx, in.Flow, in.MessageID)
	}
	if err != nil {
		return err
	}
	if first && in.Topup != nil {
		// First marked published: the notice counts once, whoever repeats it.
		sym := in.Topup.Symbol
		if _, ok := a.Assets.Asset(sym); !ok {
			sym = "other" // labels stay bounded
		}
		a.Metrics.Deposit(a.Chain, sym, in.Topup.Status)
	}
	return nil
}
