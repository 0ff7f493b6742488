// Package signerapi is the contract between payflow-signer and its callers
// (the worker, payflowctl): HTTP/1.1 with JSON bodies over a Unix socket.
//
// Routes:
//
//	POST /v1/sign         SignRequest → SignResponse: sign one transaction of one workflow step
//	POST /v1/keys         NewKeyRequest → KeyInfo: a new key the signer alone reaches
//	POST /v1/keys/import  ImportRequest → KeyInfo: hand a legacy key to the signer (wallet migrate)
//	POST /v1/btc/sign     BTCSignRequest → BTCSignResponse: sign one Bitcoin transaction of one workflow step
//	GET  /v1/btc/account  BTCAccount: the BIP84 account xpub of a network
//	GET  /v1/status       Status: backend, keys, last signatures
//	GET  /metrics         Prometheus metrics
//
// Every error is {"code": ..., "error": ...} with a status that says whether a
// retry can help: 400 bad_request and 403 refused never change on a retry,
// 404 unknown_key means the signer reaches no key for the address, 5xx are
// the signer's own trouble (its database, its KMS) and are retried.
package signerapi

import (
	"errors"
	"time"
)

// Routes.
const (
	PathSign   = "/v1/sign"
	PathKeys   = "/v1/keys"
	PathImport = "/v1/keys/import"
	PathStatus = "/v1/status"
	// PathBTCAccount (GET, ?network=) answers a BTCAccount.
	PathBTCAccount = "/v1/btc/account"
	// PathBTCSign (POST BTCSignRequest) answers a BTCSignResponse.
	PathBTCSign = "/v1/btc/sign"
	PathMetrics = "/metrics"
)

// UnsignedTx is an EIP-1559 transaction without its signature. Amounts are
// wei in decimal; Data is 0x-prefixed hex ("" or "0x": none).
type UnsignedTx struct {
	Nonce  uint64 `json:"nonce"`
	To     string `json:"to"`
	Value  string `json:"value"`
	Data   string `json:"data,omitempty"`
	Gas    uint64 `json:"gas"`
	TipCap string `json:"tip_cap"`
	FeeCap string `json:"fee_cap"`
}

// SignRequest asks for the signature of one attempt of one workflow step.
//
// Attempt 0 names Reservation: the held ledger reservation whose money the
// transaction moves. The signer signs it only if the reservation is held on
// Chain for From, in the asset the transaction moves, for exactly its
// amount, to its recipient, and no other step has used that reservation.
// Attempt n > 0 replaces attempt n-1 of the same step: the same nonce,
// recipient, value, data and gas, other fees; its reservation is the one of
// attempt 0 and must still be held.
//
// The same request again returns the same signed transaction (Replayed); a
// different transaction for a (chain, workflow, step, attempt) already signed
// is refused.
type SignRequest struct {
	Chain       string     `json:"chain"`
	ChainID     int64      `json:"chain_id"`
	WorkflowID  string     `json:"workflow_id"`
	Step        string     `json:"step"`
	Attempt     int        `json:"attempt"`
	Reservation string     `json:"reservation,omitempty"`
	From        string     `json:"from"`
	Tx          UnsignedTx `json:"tx"`
}

// SignResponse is the signed transaction: Raw is the 0x hex of its binary
// (typed) encoding, as eth_sendRawTransaction takes it.
type SignResponse struct {
	Raw      string `json:"raw"`
	TxHash   string `json:"tx_hash"`
	Replayed bool   `json:"replayed,omitempty"`
}

// BTCSignRequest asks for the signatures of one attempt of one workflow
// step on a Bitcoin chain.
//
// PSBT (base64 BIP174) spends outputs of From, every input carrying its
// witness UTXO, to exactly one output paying the reservation's recipient
// its amount in satoshis, plus at most one change output to From; its fee
// (inputs less outputs) is above 0 and at most the chain's max_fee_rate
// times its virtual size. Attempt 0 needs Reservation held on Chain for
// From in BTC, and the approval, velocity and deny-list policy of a payment
// when the recipient is no managed wallet; its inputs then belong to the
// step: no other step may spend any of them. Attempt n > 0 replaces
// attempt n-1 (signed before): the same inputs, recipient and amount, a
// strictly higher fee; its Reservation is attempt 0's ("" reads as it), and
// must still be held.
//
// The same request again (the same unsigned transaction) returns the same
// signed transaction (Replayed); a different transaction for a (chain,
// workflow, step, attempt) already signed is refused.
type BTCSignRequest struct {
	Chain       string `json:"chain"` // a btc_chains name, e.g. "BTC"
	WorkflowID  string `json:"workflow_id"`
	Step        string `json:"step"`
	Attempt     int    `json:"attempt"`     // 0 the original, n>0 an RBF replacement of the same step
	Reservation string `json:"reservation"` // the held ledger reservation whose money it moves
	From        string `json:"from"`        // the paying managed wallet (a BIP84 child of the signer's account)
	PSBT        string `json:"psbt"`        // base64 BIP174; every input carries its witness UTXO
}

// BTCSignResponse is the signed transaction: Raw is the hex of the
// finalized transaction with its witnesses, as sendrawtransaction takes
// it, and TxID its id (byte-reversed hex).
type BTCSignResponse struct {
	Raw      string `json:"raw"`
	TxID     string `json:"txid"`
	Replayed bool   `json:"replayed,omitempty"`
}

// Key backends.
const (
	BackendKMS      = "kms"      // an ECC_SECG_P256K1 key inside the KMS; Sign on the digest
	BackendEnvelope = "envelope" // a secp256k1 key sealed under a KMS data key
	BackendHD       = "hd"       // a child of the signer's mnemonic, m/44'/60'/0'/0/i
)

// NewKeyRequest asks for a new key on Backend (BackendKMS or
// BackendEnvelope).
type NewKeyRequest struct {
	Backend string `json:"backend"`
}

// ImportRequest hands an existing private key (hex, with or without 0x) to
// the signer, which seals it under a KMS data key. Only `payflowctl wallet
// migrate` sends it, once per legacy key.
type ImportRequest struct {
	PrivateKey string `json:"private_key"`
}

// KeyInfo describes a key the signer reaches (never the key itself).
type KeyInfo struct {
	Address  string    `json:"address"`
	Backend  string    `json:"backend"`
	KMSKeyID string    `json:"kms_key_id,omitempty"`
	HDIndex  *uint32   `json:"hd_index,omitempty"`
	Created  time.Time `json:"created,omitempty"`
}

// AuditEntry is one request the signer answered, and its verdict.
type AuditEntry struct {
	At         time.Time `json:"at"`
	Chain      string    `json:"chain"`
	WorkflowID string    `json:"workflow_id"`
	Step       string    `json:"step"`
	Attempt    int       `json:"attempt"`
	From       string    `json:"from"`
	TxHash     string    `json:"tx_hash,omitempty"`
	Verdict    string    `json:"verdict"` // VerdictSigned, VerdictReplayed or VerdictRefused
	Reason     string    `json:"reason,omitempty"`
}

// Verdicts.
const (
	VerdictSigned   = "signed"
	VerdictReplayed = "replayed"
	VerdictRefused  = "refused"
)

// Status is what `payflowctl signer status` shows.
type Status struct {
	KMS           string       `json:"kms"` // the KMS endpoint or region the signer uses
	EnvelopeKeyID string       `json:"envelope_key_id,omitempty"`
	AccountXPub   string       `json:"account_xpub,omitempty"` // m/44'/60'/0', public
	Keys          []KeyInfo    `json:"keys"`
	Last          []AuditEntry `json:"last"`
}

// BTCAccount is the signer's BIP84 Bitcoin account on a network: the xpub
// of Path (m/84'/coin'/0'), serialised with the network's version bytes
// (xpub on mainnet, tpub on testnet, signet and regtest, spub on simnet),
// from which the worker derives addresses; the signer derives their keys
// from its mnemonic.
type BTCAccount struct {
	Network string `json:"network"`
	Path    string `json:"path"`
	XPub    string `json:"xpub"`
}

// Error codes.
const (
	CodeBadRequest = "bad_request"
	CodeRefused    = "refused"
	CodeUnknownKey = "unknown_key"
	CodeInternal   = "internal"
)

// Error is an error answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (e *Error) Error() string { return "signer: " + e.Message }

// Unwrap lets errors.Is match ErrRefused, ErrUnknownKey and ErrBadRequest.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeRefused:
		return ErrRefused
	case CodeUnknownKey:
		return ErrUnknownKey
	case CodeBadRequest:
		return ErrBadRequest
	}
	return nil
}

// Permanent says whether err is an answer of the signer that a retry will
// not change: a refusal (ErrRefused), no key for the address
// (ErrUnknownKey) or a request it could not read (ErrBadRequest). An
// unavailable signer or a cancelled call is not.
func Permanent(err error) bool {
	return errors.Is(err, ErrRefused) || errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrBadRequest)
}

// Reason is the signer's own words for err (its Error's message), or
// err's text when it carries none.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return err.Error()
}

// Errors a caller can tell apart. ErrUnavailable (the socket does not
// answer, or the signer's own trouble) is the one a retry can cure.
var (
	ErrRefused     = errors.New("the signer refused to sign")
	ErrUnknownKey  = errors.New("the signer holds no key for this address")
	ErrBadRequest  = errors.New("the signer could not read the request")
	ErrUnavailable = errors.New("the signer is unavailable")
)
