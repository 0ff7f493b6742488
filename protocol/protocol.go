// Package protocol is payflow's wire format on RabbitMQ, compatible with the
// seed system: request and response structs, exact decimal amounts, and the
// HMAC-SHA256 request signature. It knows nothing of Temporal or the chain.
package protocol

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Flow names one of the three request kinds.
type Flow string

// The three flows.
const (
	FlowTopup    Flow = "topup"
	FlowWithdraw Flow = "withdraw"
	FlowPay      Flow = "pay"
)

// Status values of a response.
const (
	StatusFailed    = 0
	StatusSucceeded = 1
	StatusPending   = 2 // topup only: seen on chain, waiting for confirmations
)

// Sentinel errors of request validation. Every error of Open/Topup/Payment wraps
// ErrInvalidRequest and one of these, so callers can tell a bad request (answer
// status=0 or dead-letter) from an infrastructure failure (retry).
var (
	ErrInvalidRequest = errors.New("invalid request")
	ErrBadJSON        = errors.New("malformed JSON")
	ErrMissingField   = errors.New("missing field")
	ErrBadField       = errors.New("bad field")
	ErrBadSignature   = errors.New("bad signature")
	ErrStaleTimestamp = errors.New("timestamp outside the allowed window")
	ErrUnknownChain   = errors.New("unknown chain")
	ErrUnknownSymbol  = errors.New("unknown symbol")
	ErrBadAddress     = errors.New("bad address")
	ErrBadAmount      = errors.New("bad amount")
	ErrUnknownField   = errors.New("unknown field")
	ErrReservedChar   = errors.New("reserved character")
	ErrBadRecipient   = errors.New("recipient must not receive")
)

// Fields lists, per flow, every field its request may carry. A
// request carrying any other field is refused before its signature is
// checked: with a fixed set of keys and no '&' or '=' in a value, the
// canonical string names exactly one request.
var Fields = map[Flow][]string{
	FlowTopup:    {"chain", "symbol", "address", "timestamp", "sign"},
	FlowWithdraw: {"queue_id", "from_address", "to_address", "amount", "chain", "symbol", "timestamp", "sign"},
	FlowPay:      {"queue_id", "from_address", "to_address", "amount", "chain", "symbol", "order_id", "timestamp", "sign"},
}

// MaxIDLength is the most characters (runes, not bytes) a queue_id or an
// order_id may have.
const MaxIDLength = 128

// ValidQueueID reports whether s is a valid queue_id: 1 to MaxIDLength
// characters of any Unicode text except control characters.
func ValidQueueID(s string) bool { return s != "" && validID(s) }

// ValidOrderID reports whether s is a valid order_id: at most MaxIDLength
// characters of any Unicode text except control characters. (Payment also
// requires a pay's order_id to be present and not blank.)
func ValidOrderID(s string) bool { return validID(s) }

func validID(s string) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxIDLength {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Amount is an exact decimal token amount. It is written to JSON as a bare
// number (100.5), never through float64, and read from a JSON number or string.
type Amount struct{ decimal.Decimal }

// NewAmount wraps d.
func NewAmount(d decimal.Decimal) Amount { return Amount{d} }

// MustAmount parses s or panics; for tests and constants.
func MustAmount(s string) Amount { return Amount{decimal.RequireFromString(s)} }

// MarshalJSON writes the exact decimal as a JSON number.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(a.Decimal.String()), nil }

// UnmarshalJSON reads a JSON number (exact text) or a decimal string.
func (a *Amount) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if s == "null" {
		a.Decimal = decimal.Zero
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return fmt.Errorf("amount %q is not a decimal number", s)
	}
	a.Decimal = d
	return nil
}

// TopupRequest asks payflow to watch Address on Chain for incoming Symbol.
type TopupRequest struct {
	Chain     string `json:"chain"`
	Symbol    string `json:"symbol"`
	Address   string `json:"address"`
	Timestamp int64  `json:"timestamp"`
	Sign      string `json:"sign"`
}

// PaymentRequest is a withdraw (OrderID empty) or a pay request.
type PaymentRequest struct {
	QueueID     string `json:"queue_id"`
	FromAddress string `json:"from_address"`
	ToAddress   string `json:"to_address"`
	Amount      Amount `json:"amount"`
	Chain       string `json:"chain"`
	Symbol      string `json:"symbol"`
	OrderID     string `json:"order_id,omitempty"`
	Timestamp   int64  `json:"timestamp"`
	Sign        string `json:"sign"`
}

// TopupResponse reports one deposit to a watched address.
type TopupResponse struct {
	Address     string `json:"address"`
	Status      int    `json:"status"`
	Chain       string `json:"chain"`
	Symbol      string `json:"symbol"`
	Amount      Amount `json:"amount"`
	TxHash      string `json:"tx_hash"`
	LogIndex    uint   `json:"log_index"`
	BlockNumber uint64 `json:"block_number"`
	FromAddress string `json:"from_address"`
	Error       string `json:"error,omitempty"`
	// Risk says why screening froze the deposit ("sender 0x… is on the deny
	// list (OFAC-SDN)"): credited, held, never swept until an operator
	// releases or returns it. Omitted for a deposit that is not held.
	Risk string `json:"risk,omitempty"`
}

// PaymentResponse is the single answer to a withdraw or pay request. OrderID is
// present for pay only. FromAddress is the wallet that actually paid.
type PaymentResponse struct {
	QueueID     string `json:"queue_id"`
	Status      int    `json:"status"`
	Amount      Amount `json:"amount"`
	Chain       string `json:"chain"`
	Symbol      string `json:"symbol"`
	TxHash      string `json:"tx_hash"`
	OrderID     string `json:"order_id,omitempty"`
	FromAddress string `json:"from_address"`
	ToAddress   string `json:"to_address"`
	BlockNumber uint64 `json:"block_number"`
	Error       string `json:"error,omitempty"`
	// ReceivedAmount is set on a paid transfer whose token moved less to
	// the recipient than Amount (it takes a fee on transfer): what the
	// recipient received. Amount is what left the paying wallet.
	ReceivedAmount *Amount `json:"received_amount,omitempty"`
}

// Canonical returns the string that is signed: every field but "sign", sorted
// by key, as key=value joined by '&'. Strings are written unquoted, numbers and
// other literals exactly as their JSON text appeared.
func Canonical(fields map[string]json.RawMessage) (string, error) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != "sign" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		raw := bytes.TrimSpace(fields[k])
		v := string(raw)
		if len(raw) > 0 && raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", fmt.Errorf("%w: field %s: %v", ErrBadJSON, k, err)
			}
			v = s
		}
		if i > 0 {
			sb.WriteByte('&')
		}
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(v)
	}
	return sb.String(), nil
}

// Signature is lowercase hex HMAC-SHA256(secret, canonical).
func Signature(secret, canonical string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(canonical))
	return hex.EncodeToString(m.Sum(nil))
}

// SignBody adds (or replaces) the "sign" field of a JSON object. Clients and
// tests use it; numbers keep the exact text they were written with.
func SignBody(secret string, body []byte) ([]byte, error) {
	fields, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	c, err := Canonical(fields)
	if err != nil {
		return nil, err
	}
	sig, _ := json.Marshal(Signature(secret, c))
	fields["sign"] = sig
	return json.Marshal(fields)
}

func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return nil, fmt.Errorf("%w: %w: %v", ErrInvalidRequest, ErrBadJSON, err)
	}
	if fields == nil {
		return nil, fmt.Errorf("%w: %w: not a JSON object", ErrInvalidRequest, ErrBadJSON)
	}
	return fields, nil
}

// Verifier checks signatures and timestamps of incoming requests.
type Verifier struct {
	Secret string
	Skew   time.Duration
	Now    func() time.Time // nil: time.Now
}

// Envelope is a decoded request before its fields are typed: the raw fields,
// whatever id it carries to answer to, and the first problem found, if any.
type Envelope struct {
	Fields map[string]json.RawMessage
	// QueueID is the request's queue_id if it has one that is a string, for
	// answering a bad request with status=0.
	QueueID string
	// Address is a topup request's address, if it is a string.
	Address string
}

func (e Envelope) str(key string) (string, error) {
	s, err := e.rawStr(key)
	if err == nil && strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("%w: %w: %s is empty", ErrInvalidRequest, ErrMissingField, key)
	}
	return s, err
}

// rawStr is str without the blank check: any string, even "" or " ".
func (e Envelope) rawStr(key string) (string, error) {
	raw, ok := e.Fields[key]
	if !ok {
		return "", fmt.Errorf("%w: %w: %s", ErrInvalidRequest, ErrMissingField, key)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %w: %s must be a string", ErrInvalidRequest, ErrBadField, key)
	}
	return s, nil
}

func (e Envelope) int64(key string) (int64, error) {
	raw, ok := e.Fields[key]
	if !ok {
		return 0, fmt.Errorf("%w: %w: %s", ErrInvalidRequest, ErrMissingField, key)
	}
	n, err := strconv.ParseInt(strings.Trim(string(bytes.TrimSpace(raw)), `"`), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %w: %s must be an integer", ErrInvalidRequest, ErrBadField, key)
	}
	return n, nil
}

// Open decodes a request of flow and checks, in this order: that it is a JSON
// object; that it carries only the fields of its flow (Fields) and that every
// value is a string without '&' or '=', a number or a literal (these two come
// before anything else); then the signature; then the timestamp.
// The Envelope is returned even with an error when the body was a JSON
// object, so the caller can answer to its queue_id; Envelope.QueueID is set
// only when the request carries a valid queue_id.
func (v Verifier) Open(flow Flow, body []byte) (Envelope, error) {
	allowed, ok := Fields[flow]
	if !ok {
		return Envelope{}, fmt.Errorf("opening a request of unknown flow %q", flow)
	}
	fields, err := decodeObject(body)
	if err != nil {
		return Envelope{}, err
	}
	env := Envelope{Fields: fields}
	if raw, ok := fields["queue_id"]; ok {
		var q string
		if json.Unmarshal(raw, &q) == nil && ValidQueueID(q) {
			env.QueueID = q
		}
	}
	if raw, ok := fields["address"]; ok {
		_ = json.Unmarshal(raw, &env.Address)
	}
	if err := checkShape(flow, allowed, fields); err != nil {
		return env, err
	}
	sign, err := env.str("sign")
	if err != nil {
		return env, err
	}
	c, err := Canonical(fields)
	if err != nil {
		return env, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	want := Signature(v.Secret, c)
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(sign))) {
		return env, fmt.Errorf("%w: %w", ErrInvalidRequest, ErrBadSignature)
	}
	ts, err := env.int64("timestamp")
	if err != nil {
		return env, err
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if d := now().Sub(time.Unix(ts, 0)); d > v.Skew || d < -v.Skew {
		return env, fmt.Errorf("%w: %w: %d is %s from now (allowed ±%s)", ErrInvalidRequest, ErrStaleTimestamp, ts, d.Round(time.Second), v.Skew)
	}
	return env, nil
}

// checkShape refuses fields outside allowed and values whose canonical text
// could pass for another field: strings holding '&' or '=', and objects or
// arrays (written raw, their text could hold both).
func checkShape(flow Flow, allowed []string, fields map[string]json.RawMessage) error {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var unknown []string
	for _, k := range keys {
		known := false
		for _, a := range allowed {
			if k == a {
				known = true
				break
			}
		}
		if !known {
			unknown = append(unknown, fmt.Sprintf("%q", clip(k)))
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%w: %w: %s is not a field of a %s request (allowed: %s)", ErrInvalidRequest, ErrUnknownField,
			strings.Join(unknown, ", "), flow, strings.Join(allowed, ", "))
	}
	for _, k := range keys {
		raw := bytes.TrimSpace(fields[k])
		if len(raw) == 0 {
			continue
		}
		switch raw[0] {
		case '{', '[':
			return fmt.Errorf("%w: %w: %s must be a string or a number", ErrInvalidRequest, ErrBadField, k)
		case '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("%w: %w: %s is not a valid JSON string", ErrInvalidRequest, ErrBadJSON, k)
			}
			if strings.ContainsAny(s, "&=") {
				return fmt.Errorf("%w: %w: %s must not contain '&' or '='", ErrInvalidRequest, ErrReservedChar, k)
			}
		}
	}
	return nil
}

// clip shortens a client-supplied name for an error message.
func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// Registry knows the chains and tokens payflow serves.
type Registry interface {
	// TokenDecimals returns the decimals of symbol on chain, and whether the
	// pair is served. chainOK reports whether the chain itself is known.
	TokenDecimals(chain, symbol string) (decimals int32, chainOK, symbolOK bool)
}

var addressRE = regexp.MustCompile(`^0x[0-9a-fA-F]{40}$`)

// IsAddress reports whether s is a 0x-prefixed 20-byte hex address (any
// case). It is payflow's one address check: config, API and requests use it.
func IsAddress(s string) bool { return addressRE.MatchString(s) }

// NormalizeAddress lowercases a 0x address, or fails with ErrBadAddress.
func NormalizeAddress(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if !IsAddress(s) {
		return "", fmt.Errorf("%w: %w: %s %q is not a 0x-prefixed 20-byte hex address", ErrInvalidRequest, ErrBadAddress, field, s)
	}
	return strings.ToLower(s), nil
}

func checkAsset(reg Registry, chain, symbol string) (int32, error) {
	dec, chainOK, symOK := reg.TokenDecimals(chain, symbol)
	if !chainOK {
		return 0, fmt.Errorf("%w: %w: %q", ErrInvalidRequest, ErrUnknownChain, chain)
	}
	if !symOK {
		return 0, fmt.Errorf("%w: %w: %q on %s", ErrInvalidRequest, ErrUnknownSymbol, symbol, chain)
	}
	return dec, nil
}

// Topup types an opened envelope as a topup request and validates it.
func (e Envelope) Topup(reg Registry) (TopupRequest, error) {
	var r TopupRequest
	var err error
	if r.Chain, err = e.str("chain"); err != nil {
		return r, err
	}
	if r.Symbol, err = e.str("symbol"); err != nil {
		return r, err
	}
	r.Chain, r.Symbol = strings.ToUpper(r.Chain), strings.ToUpper(r.Symbol)
	if _, err = checkAsset(reg, r.Chain, r.Symbol); err != nil {
		return r, err
	}
	addr, err := e.str("address")
	if err != nil {
		return r, err
	}
	if r.Address, err = NormalizeAddress("address", addr); err != nil {
		return r, err
	}
	r.Timestamp, _ = e.int64("timestamp")
	r.Sign, _ = e.str("sign")
	return r, nil
}

// Payment types an opened envelope as a withdraw or pay request and validates
// it: known chain and symbol, addresses, amount > 0 with no more decimals than
// the token has, and order_id for pay.
func (e Envelope) Payment(flow Flow, reg Registry) (PaymentRequest, error) {
	var r PaymentRequest
	var err error
	if r.QueueID, err = e.rawStr("queue_id"); err != nil {
		return r, err
	}
	if !ValidQueueID(r.QueueID) {
		return r, fmt.Errorf("%w: %w: queue_id must be 1 to %d characters without control characters", ErrInvalidRequest, ErrBadField, MaxIDLength)
	}
	if flow == FlowPay {
		if r.OrderID, err = e.str("order_id"); err != nil {
			return r, err
		}
		if !ValidOrderID(r.OrderID) {
			return r, fmt.Errorf("%w: %w: order_id must be at most %d characters without control characters", ErrInvalidRequest, ErrBadField, MaxIDLength)
		}
	}
	if r.Chain, err = e.str("chain"); err != nil {
		return r, err
	}
	if r.Symbol, err = e.str("symbol"); err != nil {
		return r, err
	}
	r.Chain, r.Symbol = strings.ToUpper(r.Chain), strings.ToUpper(r.Symbol)
	decimals, err := checkAsset(reg, r.Chain, r.Symbol)
	if err != nil {
		return r, err
	}
	from, err := e.str("from_address")
	if err != nil {
		return r, err
	}
	if r.FromAddress, err = NormalizeAddress("from_address", from); err != nil {
		return r, err
	}
	to, err := e.str("to_address")
	if err != nil {
		return r, err
	}
	if r.ToAddress, err = NormalizeAddress("to_address", to); err != nil {
		return r, err
	}
	raw, ok := e.Fields["amount"]
	if !ok {
		return r, fmt.Errorf("%w: %w: amount", ErrInvalidRequest, ErrMissingField)
	}
	if err := json.Unmarshal(raw, &r.Amount); err != nil {
		return r, fmt.Errorf("%w: %w: %v", ErrInvalidRequest, ErrBadAmount, err)
	}
	if r.Amount.Sign() <= 0 {
		return r, fmt.Errorf("%w: %w: amount %s must be > 0", ErrInvalidRequest, ErrBadAmount, r.Amount.String())
	}
	if -r.Amount.Exponent() > decimals && !r.Amount.Equal(r.Amount.Truncate(decimals)) {
		return r, fmt.Errorf("%w: %w: amount %s has more than %d decimals", ErrInvalidRequest, ErrBadAmount, r.Amount.String(), decimals)
	}
	r.Timestamp, _ = e.int64("timestamp")
	r.Sign, _ = e.str("sign")
	return r, nil
}

// Digest is a stable fingerprint of a payment request's content (not its
// signature or timestamp), used to tell a redelivery from a reused queue_id.
func (r PaymentRequest) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n%s\n%s\n%s", r.QueueID, r.FromAddress, r.ToAddress,
		r.Amount.Decimal.String(), r.Chain, r.Symbol, r.OrderID)
	return hex.EncodeToString(h.Sum(nil))[:32]
}
