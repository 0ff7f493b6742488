package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"go.temporal.io/sdk/activity"

	"payflow/chain"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/rmq"
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
}

// ReserveResult names the wallet that will pay.
type ReserveResult struct {
	PayingAddress string
	// FellBack is true when the collection wallet pays instead of FromAddress.
	FellBack bool
}

// ReserveFunds checks that FromAddress is a wallet payflow holds the key of,
// and reserves the amount on it; if it cannot cover the amount, it reserves
// on the collection wallet instead. Replays return the same wallet.
func (a *Activities) ReserveFunds(ctx context.Context, in ReserveInput) (ReserveResult, error) {
	w, err := a.Wallets.Get(ctx, in.Chain, in.FromAddress)
	if errors.Is(err, ledger.ErrWalletNotFound) || (err == nil && !w.HasKey) {
		return ReserveResult{}, permanent(ErrTypeUnknownWallet,
			fmt.Errorf("from_address %s is not a wallet payflow manages on %s", in.FromAddress, in.Chain))
	}
	if err != nil {
		return ReserveResult{}, err
	}
	if r, err := a.Ledger.GetReservation(ctx, in.Key); err == nil {
		// Replay: whatever wallet was reserved before pays.
		return ReserveResult{PayingAddress: r.Address, FellBack: r.Address != w.Address}, nil
	}
	res := ledger.ReserveInput{QueueID: in.Key, Chain: in.Chain, Address: w.Address, Symbol: in.Symbol,
		Amount: in.Amount.Decimal, WorkflowID: in.Key}
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
	return ReserveResult{PayingAddress: res.Address, FellBack: true}, nil
}

// SettleInput settles a reservation after its transfer confirmed.
type SettleInput struct {
	Key    string
	TxHash string
}

// SettleFunds debits the reservation. Idempotent.
func (a *Activities) SettleFunds(ctx context.Context, in SettleInput) error {
	_, err := a.Ledger.Settle(ctx, in.Key, in.TxHash)
	return classify(err)
}

// ReleaseInput releases a reservation (compensation).
type ReleaseInput struct {
	Key string
}

// ReleaseFunds returns the reservation to available. Idempotent; a missing
// reservation is fine (nothing was held).
func (a *Activities) ReleaseFunds(ctx context.Context, in ReleaseInput) error {
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
	Symbol     string
	From       string
	To         string
	Amount     protocol.Amount
}

// TransferResult identifies the signed (and later broadcast) transaction.
type TransferResult struct {
	TxHash string
	Nonce  uint64
	From   string
}

// SignTransfer checks token and gas balances and signs the transfer once,
// storing it before anything is sent. A repeat returns the stored one.
func (a *Activities) SignTransfer(ctx context.Context, in TransferInput) (TransferResult, error) {
	tok, ok := a.Tokens[strings.ToUpper(in.Symbol)]
	if !ok {
		return TransferResult{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("unknown symbol %q", in.Symbol))
	}
	units, err := chain.ToUnits(in.Amount.Decimal, tok.Decimals)
	if err != nil {
		return TransferResult{}, classify(err)
	}
	stx, err := a.Broadcaster.SignTransfer(ctx, chain.TransferRequest{
		WorkflowID: in.WorkflowID, Step: in.Step,
		From: common.HexToAddress(in.From), To: common.HexToAddress(in.To), Token: common.HexToAddress(tok.Address),
		Units: units,
	})
	if err != nil {
		return TransferResult{}, classify(err)
	}
	return TransferResult{TxHash: stx.Hash.Hex(), Nonce: stx.Nonce, From: chain.Lower(stx.From)}, nil
}

// BroadcastInput names the stored transaction to send.
type BroadcastInput struct {
	WorkflowID string
	Step       string
}

// Broadcast registers the stored transaction with the confirmation tracker,
// then sends its bytes. Sending again is harmless.
func (a *Activities) Broadcast(ctx context.Context, in BroadcastInput) (TransferResult, error) {
	stx, err := a.Broadcaster.Stored(ctx, in.WorkflowID, in.Step)
	if err != nil {
		return TransferResult{}, permanent(ErrTypeInvalidRequest, err)
	}
	// Track before sending, so a confirmation can never be missed.
	if err := chain.TrackTxConfirmedOnly(ctx, a.DB, a.Chain, stx.Hash, in.WorkflowID); err != nil {
		return TransferResult{}, err
	}
	if _, err := a.Broadcaster.Send(ctx, in.WorkflowID, in.Step); err != nil {
		return TransferResult{}, classify(err)
	}
	return TransferResult{TxHash: stx.Hash.Hex(), Nonce: stx.Nonce, From: chain.Lower(stx.From)}, nil
}

// ReceiptInput asks about a transaction.
type ReceiptInput struct {
	TxHash string
}

// ReceiptResult is what the chain says now.
type ReceiptResult struct {
	Mined       bool
	Succeeded   bool
	BlockNumber uint64
}

// CheckReceipt reads a transaction's receipt (used before giving up on a
// transfer that timed out: a mined transfer must never be reported failed).
func (a *Activities) CheckReceipt(ctx context.Context, in ReceiptInput) (ReceiptResult, error) {
	r, err := a.Broadcaster.Receipt(ctx, common.HexToHash(in.TxHash))
	if errors.Is(err, ethereum.NotFound) {
		return ReceiptResult{}, nil
	}
	if err != nil {
		return ReceiptResult{}, err
	}
	return ReceiptResult{Mined: true, Succeeded: r.Status == 1, BlockNumber: r.BlockNumber.Uint64()}, nil
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
// stored in the outbox first, and a repeat after the broker confirmed it
// publishes nothing. (If the worker dies between the broker's confirm and the
// outbox mark, the repeat publishes again with the same message id, which
// consumers deduplicate on.)
func (a *Activities) PublishResult(ctx context.Context, in PublishInput) error {
	q, ok := a.Responses[in.Flow]
	if !ok {
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
	if _, err := a.DB.ExecContext(ctx, "INSERT IGNORE INTO outbox (message_id, exchange, routing_key, body) VALUES (?,?,?,?)",
		in.MessageID, q.Exchange, q.RoutingKey(), body); err != nil {
		return fmt.Errorf("storing response %s: %w", in.MessageID, err)
	}
	var published bool
	var stored []byte
	if err := a.DB.QueryRowContext(ctx, "SELECT published_at IS NOT NULL, body FROM outbox WHERE message_id=?", in.MessageID).
		Scan(&published, &stored); err != nil {
		return fmt.Errorf("reading outbox %s: %w", in.MessageID, err)
	}
	if published {
		return nil
	}
	// Publish the stored body, so a changed workflow cannot send two versions.
	if err := a.Publisher.Publish(ctx, rmq.Message{Exchange: q.Exchange, RoutingKey: q.RoutingKey(),
		MessageID: in.MessageID, Body: stored}); err != nil {
		return err
	}
	if _, err := a.DB.ExecContext(ctx, "UPDATE outbox SET published_at=CURRENT_TIMESTAMP(6) WHERE message_id=?", in.MessageID); err != nil {
		return fmt.Errorf("marking %s published: %w", in.MessageID, err)
	}
	return nil
}

// ReplaceResult is the outcome of ReplaceTransfer.
type ReplaceResult struct {
	TxHash  string
	Attempt int
	// Mined: an attempt already has a receipt; nothing new was signed.
	Mined bool
}

// ReplaceTransfer replaces a stuck transfer on the same nonce at a higher fee
// and tracks the new hash. If an attempt is already mined it returns that one
// and signs nothing. Too many attempts or a fee above the cap are permanent.
func (a *Activities) ReplaceTransfer(ctx context.Context, in BroadcastInput) (ReplaceResult, error) {
	stx, err := a.Broadcaster.Replace(ctx, in.WorkflowID, in.Step)
	if err != nil {
		return ReplaceResult{}, classify(err)
	}
	if err := chain.TrackTxConfirmedOnly(ctx, a.DB, a.Chain, stx.Hash, in.WorkflowID); err != nil {
		return ReplaceResult{}, err
	}
	return ReplaceResult{TxHash: stx.Hash.Hex(), Attempt: stx.Attempt, Mined: stx.Mined}, nil
}
