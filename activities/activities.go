// Package activities is where payflow's workflows touch the world: the
// ledger, the chain and RabbitMQ. Every activity is safe to repeat (a retry, a
// crashed worker, an operator's reset): it is idempotent by a key in a unique
// index. Permanent failures are returned as non-retryable application errors
// whose type is one of the ErrType consts; everything else is retried.
package activities

import (
	"database/sql"
	"errors"

	"go.temporal.io/sdk/temporal"

	"payflow/answers"
	"payflow/audit"
	"payflow/chain"
	"payflow/config"
	"payflow/internal/metrics"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/risk/denylist"
	"payflow/risk/holds"
	"payflow/rmq"
)

// Error types of non-retryable failures, for workflows to branch on.
const (
	ErrTypeInsufficientFunds   = "InsufficientFunds"
	ErrTypeUnknownWallet       = "UnknownWallet"
	ErrTypeInsufficientGas     = "InsufficientGas"
	ErrTypeFeeCap              = "FeeCapExceeded"
	ErrTypeNonceConflict       = "NonceConflict"
	ErrTypeInvalidRequest      = "InvalidRequest"
	ErrTypeReservationMismatch = "ReservationMismatch"
	ErrTypeReservationClosed   = "ReservationClosed"
	ErrTypeTooManyAttempts     = "TooManyAttempts"
	// ErrTypeRefusedByChain: the node's simulation of the transfer failed
	// (a recipient that refuses the coin, a token that refuses the
	// transfer): answered before anything is signed.
	ErrTypeRefusedByChain = "RefusedByChain"
	// ErrTypeSignerRefused: payflow-signer will not sign the transfer (it
	// is not the money its reservation holds, or no key is held for the
	// sender); its reason is the message. Nothing was signed or stored.
	ErrTypeSignerRefused = "SignerRefused"
	// ErrTypeRecipientBlocked: the recipient is on the deny list; nothing
	// was reserved (BeginPayment) or signed (SignTransfer).
	ErrTypeRecipientBlocked = "RecipientBlocked"
)

// Activities holds the dependencies of every activity. Registered once with
// the worker; workflows call its methods through a nil *Activities.
type Activities struct {
	Chain string // protocol chain name, e.g. "ETH"; one Activities per chain
	// Assets is the chain's configuration: its tokens and native coin.
	Assets     config.ChainConfig
	Collection string // collection wallet address ("" = no fallback)
	// Confirmations is how deep a block must be for InspectTransfer to take
	// a nonce as consumed for good (the chain's confirmHeight).
	Confirmations uint64
	Responses     map[protocol.Flow]config.QueueConfig
	DB            *sql.DB
	// Transfers, Fees, Balances and Reads are the chain's family behind the
	// contract of package chain (for an EVM chain, one *family.Family).
	Transfers chain.Transfers
	Fees      chain.Fees
	Balances  chain.Balances
	Reads     chain.Reader
	Ledger    *ledger.Ledger
	Wallets   *ledger.Wallets
	Publisher *rmq.Publisher
	// Metrics counts payments, deposit notices and broadcasts, once each
	// (nil: nothing is counted).
	Metrics *metrics.Metrics
	// Audit is the operator audit trail, where RecordApproval writes.
	Audit *audit.Log
	// History reads workflow histories (the Temporal client): whom
	// Temporal says sent an approval (nil: the payload's By is taken).
	History History
	// Screen is the deny list payments and deposits are screened against
	// (nil: none); Holds records the deposits it froze.
	Screen *denylist.Screen
	Holds  *holds.Store

	// signed remembers what a sign activity returned for the broadcast
	// that follows it (see justSigned).
	signed justSigned
}

func permanent(errType string, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), errType, err)
}

// permanentErrs maps package sentinels to the non-retryable error type an
// error wrapping one of them becomes, the first match winning.
var permanentErrs = []struct {
	sentinels []error
	errType   string
}{
	{[]error{ledger.ErrInsufficientFunds, chain.ErrInsufficientToken}, ErrTypeInsufficientFunds},
	{[]error{ledger.ErrWalletNotFound}, ErrTypeUnknownWallet},
	{[]error{chain.ErrInsufficientGas}, ErrTypeInsufficientGas},
	{[]error{chain.ErrFeeCapExceeded}, ErrTypeFeeCap},
	{[]error{chain.ErrTooManyAttempts}, ErrTypeTooManyAttempts},
	{[]error{chain.ErrNonceTooLow}, ErrTypeNonceConflict},
	{[]error{ledger.ErrReservationMismatch}, ErrTypeReservationMismatch},
	{[]error{ledger.ErrReservationClosed}, ErrTypeReservationClosed},
	{[]error{chain.ErrBadAmount, ledger.ErrBadAmount}, ErrTypeInvalidRequest},
	{[]error{chain.ErrSignerRefused}, ErrTypeSignerRefused},
}

// classify maps package sentinels to non-retryable error types (see
// permanentErrs); others are returned as they are so Temporal retries them.
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, p := range permanentErrs {
		for _, s := range p.sentinels {
			if errors.Is(err, s) {
				return permanent(p.errType, err)
			}
		}
	}
	if errors.Is(err, chain.ErrWouldRevert) {
		// The node's words stay in the logs (the cause); the answer says
		// what it means for the payment.
		return temporal.NewNonRetryableApplicationError(
			"the chain refuses this transfer: simulating it failed (the recipient or the token does not accept it); nothing was signed",
			ErrTypeRefusedByChain, err)
	}
	return err
}

// answers is the outbox, publishing through the Publisher to the Responses
// queues.
func (a *Activities) answers() *answers.Outbox {
	return answers.New(a.DB, a.Publisher, a.Responses)
}
