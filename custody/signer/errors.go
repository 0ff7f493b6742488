package signer

import (
	"errors"
	"fmt"

	"payflow/custody/signerapi"
)

// Reasons of a refusal: the fixed label set of
// payflow_signer_refusals_total and the audit's reason prefix.
const (
	reasonBadRequest          = "bad_request"          // the request does not read as one
	reasonUnknownChain        = "unknown_chain"        // no configured chain of that name
	reasonChainID             = "chain_id"             // the chain id is not the chain's
	reasonFeeCap              = "fee_cap"              // the fee cap (Bitcoin: the fee rate) is above the chain's maximum
	reasonNoReservation       = "no_reservation"       // a first attempt names no reservation
	reasonReservationNotFound = "reservation_missing"  // the reservation does not exist
	reasonReservationClosed   = "reservation_closed"   // the reservation is settled or released
	reasonReservationMismatch = "reservation_mismatch" // wallet, chain, asset, amount or recipient differ
	reasonNoRecipient         = "no_recipient"         // the reservation names no recipient
	reasonNotPayment          = "not_a_payment"        // the transaction is no payment of the chain's assets
	reasonReservationUsed     = "reservation_used"     // another step already paid with the reservation
	reasonStepConflict        = "step_conflict"        // the attempt was signed for another transaction
	reasonReplacement         = "replacement"          // an attempt n>0 that is no replacement of n-1
	reasonUnknownKey          = "unknown_key"          // the signer reaches no key for the address
	reasonNotApproved         = "not_approved"         // held for approval (threshold, velocity) with no approval recorded
	reasonNoVelocityDecision  = "no_velocity_decision" // the asset has velocity limits and the payment no decision
	reasonVelocityMismatch    = "velocity_mismatch"    // the decision says it fits; its sums recomputed say it is over
	reasonRecipientBlocked    = "recipient_blocked"    // the recipient is on the deny list
	reasonNotOurInput         = "not_our_input"        // a Bitcoin input spends no output of the paying wallet
	reasonInputUsed           = "input_used"           // a Bitcoin input is spent by another step's transaction
)

// refusalReasons lists every reason, for the metric's initial zeros.
var refusalReasons = []string{reasonBadRequest, reasonUnknownChain, reasonChainID, reasonFeeCap, reasonNoReservation,
	reasonReservationNotFound, reasonReservationClosed, reasonReservationMismatch, reasonNoRecipient, reasonNotPayment,
	reasonReservationUsed, reasonStepConflict, reasonReplacement, reasonUnknownKey, reasonRecipientBlocked, reasonNotApproved,
	reasonNoVelocityDecision, reasonVelocityMismatch, reasonNotOurInput, reasonInputUsed}

// Refusal is a request the signer will not sign, now or on a retry: Reason
// is one of a fixed set (the metric label), Message says why in the
// business's terms.
type Refusal struct {
	Reason  string
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// Unwrap makes a refusal read as the API's: in process as over the socket.
func (r *Refusal) Unwrap() error { return signerapi.ErrRefused }

func refuse(reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// badRequest is a request that does not read: a missing or malformed field.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func (e *badRequest) Unwrap() error { return signerapi.ErrBadRequest }

// unknownKey: the signer reaches no key for the address.
type unknownKey struct{ msg string }

func (e *unknownKey) Error() string { return e.msg }

func (e *unknownKey) Unwrap() error { return signerapi.ErrUnknownKey }

// Errors of keys and state.
var (
	// ErrBackend: a new key was asked for on a backend the signer does not
	// create keys on (kms and envelope only: HD children are derived).
	ErrBackend = errors.New("unknown key backend")
	// ErrPrivateKey: an imported private key is not 32 bytes of hex on the
	// curve. The message never quotes the key.
	ErrPrivateKey = errors.New("the private key is not 32 bytes of hex of a secp256k1 key")
	// ErrState: the signer's stored state does not hold together (its
	// sealed mnemonic does not derive its account xpub).
	ErrState = errors.New("the signer's state is inconsistent")
)
