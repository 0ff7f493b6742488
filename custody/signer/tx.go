package signer

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/shopspring/decimal"

	"payflow/config"
	"payflow/custody/signerapi"
	"payflow/protocol"
)

// Limits of the identifiers a request names: the widths of signer_steps'
// columns.
const (
	maxChain       = 16
	maxWorkflowID  = 255
	maxStep        = 64
	maxReservation = 255
	maxDataBytes   = 64 << 10
)

// unsignedTx is a request's transaction in one canonical form, so that two
// requests for the same transaction compare equal field by field.
type unsignedTx struct {
	ChainID int64
	From    common.Address
	Nonce   uint64
	To      common.Address
	Value   *big.Int
	Data    []byte
	Gas     uint64
	TipCap  *big.Int
	FeeCap  *big.Int
}

// step names one attempt of one workflow step on one chain.
type step struct {
	Chain, WorkflowID, Step string
	Attempt                 int
	Reservation             string
}

func (s step) String() string {
	return fmt.Sprintf("step %s attempt %d of workflow %s on %s", s.Step, s.Attempt, s.WorkflowID, s.Chain)
}

// parseStep checks the fields that name a request's step, of either
// family: its chain, workflow, step, attempt and reservation. The step is
// returned even when a field is wrong (the refusal's audit names it).
func parseStep(chain, workflowID, stepName string, attempt int, reservation string) (step, error) {
	st := step{Chain: strings.ToUpper(strings.TrimSpace(chain)), WorkflowID: workflowID, Step: stepName,
		Attempt: attempt, Reservation: reservation}
	bad := func(format string, args ...any) (step, error) {
		return st, &badRequest{msg: fmt.Sprintf(format, args...)}
	}
	for _, f := range []struct {
		name, v string
		max     int
		need    bool
	}{{"chain", st.Chain, maxChain, true}, {"workflow_id", st.WorkflowID, maxWorkflowID, true},
		{"step", st.Step, maxStep, true}, {"reservation", st.Reservation, maxReservation, false}} {
		switch {
		case f.need && f.v == "":
			return bad("%s is required", f.name)
		case utf8.RuneCountInString(f.v) > f.max || !utf8.ValidString(f.v):
			return bad("%s is not valid UTF-8 of at most %d characters", f.name, f.max)
		}
	}
	if strings.IndexFunc(st.Chain, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') }) >= 0 {
		return bad("chain %q is not a chain name (letters, digits, '_' or '-')", clip(st.Chain))
	}
	if st.Attempt < 0 {
		return bad("attempt %d is below 0", st.Attempt)
	}
	return st, nil
}

// parseRequest checks the request's shape and returns its step and its
// transaction, or a bad-request error saying which field is wrong.
func parseRequest(req signerapi.SignRequest) (step, unsignedTx, error) {
	st, err := parseStep(req.Chain, req.WorkflowID, req.Step, req.Attempt, req.Reservation)
	if err != nil {
		return st, unsignedTx{}, err
	}
	bad := func(format string, args ...any) (step, unsignedTx, error) {
		return st, unsignedTx{}, &badRequest{msg: fmt.Sprintf(format, args...)}
	}
	tx := unsignedTx{ChainID: req.ChainID, Nonce: req.Tx.Nonce, Gas: req.Tx.Gas}
	if !protocol.IsAddress(req.From) {
		return bad("from %q is not a 0x address", clip(req.From))
	}
	tx.From = common.HexToAddress(req.From)
	if !protocol.IsAddress(req.Tx.To) {
		return bad("tx.to %q is not a 0x address", clip(req.Tx.To))
	}
	tx.To = common.HexToAddress(req.Tx.To)
	if tx.Value, err = wei("tx.value", req.Tx.Value); err != nil {
		return st, unsignedTx{}, err
	}
	if tx.TipCap, err = wei("tx.tip_cap", req.Tx.TipCap); err != nil {
		return st, unsignedTx{}, err
	}
	if tx.FeeCap, err = wei("tx.fee_cap", req.Tx.FeeCap); err != nil {
		return st, unsignedTx{}, err
	}
	if tx.TipCap.Cmp(tx.FeeCap) > 0 {
		return bad("tx.tip_cap %s is above tx.fee_cap %s", tx.TipCap, tx.FeeCap)
	}
	if tx.Data, err = hexData(req.Tx.Data); err != nil {
		return st, unsignedTx{}, err
	}
	if req.ChainID <= 0 {
		return bad("chain_id %d is not a chain id", req.ChainID)
	}
	if tx.Gas == 0 {
		return bad("tx.gas is 0")
	}
	return st, tx, nil
}

// wei reads a decimal amount of wei: an integer from 0 to 2^256-1.
func wei(field, s string) (*big.Int, error) {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok || v.Sign() < 0 || v.BitLen() > 256 {
		return nil, &badRequest{msg: fmt.Sprintf("%s %q is not an amount of wei (a decimal integer from 0 to 2^256-1)", field, clip(s))}
	}
	return v, nil
}

func hexData(s string) ([]byte, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(h) > 2*maxDataBytes {
		return nil, &badRequest{msg: fmt.Sprintf("tx.data is longer than %d bytes", maxDataBytes)}
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, &badRequest{msg: "tx.data is not hex"}
	}
	return b, nil
}

// clip shortens a quoted input so that an error never carries a large body.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// transaction is tx as go-ethereum signs it.
func (tx unsignedTx) transaction() *types.Transaction {
	to := tx.To
	return types.NewTx(&types.DynamicFeeTx{
		ChainID:   big.NewInt(tx.ChainID),
		Nonce:     tx.Nonce,
		GasTipCap: new(big.Int).Set(tx.TipCap),
		GasFeeCap: new(big.Int).Set(tx.FeeCap),
		Gas:       tx.Gas,
		To:        &to,
		Value:     new(big.Int).Set(tx.Value),
		Data:      bytes.Clone(tx.Data),
	})
}

// differences lists, in words, the fields in which b differs from a (a was
// signed). Fees are left out when withFees is false: a replacement changes
// them.
func differences(a, b unsignedTx, withFees bool) []string {
	var out []string
	if a.ChainID != b.ChainID {
		out = append(out, fmt.Sprintf("chain id %d, not %d", a.ChainID, b.ChainID))
	}
	if a.From != b.From {
		out = append(out, fmt.Sprintf("from %s, not %s", addr(a.From), addr(b.From)))
	}
	if a.Nonce != b.Nonce {
		out = append(out, fmt.Sprintf("nonce %d, not %d", a.Nonce, b.Nonce))
	}
	if a.To != b.To {
		out = append(out, fmt.Sprintf("to %s, not %s", addr(a.To), addr(b.To)))
	}
	if a.Value.Cmp(b.Value) != 0 {
		out = append(out, fmt.Sprintf("value %s wei, not %s", a.Value, b.Value))
	}
	if !bytes.Equal(a.Data, b.Data) {
		out = append(out, fmt.Sprintf("data 0x%x, not 0x%x", clipBytes(a.Data), clipBytes(b.Data)))
	}
	if a.Gas != b.Gas {
		out = append(out, fmt.Sprintf("gas %d, not %d", a.Gas, b.Gas))
	}
	if withFees {
		if a.TipCap.Cmp(b.TipCap) != 0 {
			out = append(out, fmt.Sprintf("tip cap %s wei, not %s", a.TipCap, b.TipCap))
		}
		if a.FeeCap.Cmp(b.FeeCap) != 0 {
			out = append(out, fmt.Sprintf("fee cap %s wei, not %s", a.FeeCap, b.FeeCap))
		}
	}
	return out
}

func clipBytes(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// addr is an address as payflow writes it: lowercase 0x hex.
func addr(a common.Address) string { return strings.ToLower(a.Hex()) }

// erc20Transfer is the selector of transfer(address,uint256).
var erc20Transfer = []byte{0xa9, 0x05, 0x9c, 0xbb}

// payment is what a transaction moves, in the ledger's terms.
type payment struct {
	Symbol    string
	Amount    decimal.Decimal
	Recipient string
}

func (p payment) String() string {
	return fmt.Sprintf("%s %s for %s", p.Amount, p.Symbol, p.Recipient)
}

// decodePayment reads tx as a payment on chain ch: the native coin when it
// carries no data (value to to), else exactly an ERC20 transfer(recipient,
// units) call of one of the chain's tokens with no value. Anything else is
// refused: the signer signs payments only.
func decodePayment(ch config.ChainConfig, tx unsignedTx) (payment, error) {
	if len(tx.Data) == 0 {
		return payment{Symbol: ch.Native.Symbol, Amount: decimal.NewFromBigInt(tx.Value, -config.NativeDecimals),
			Recipient: addr(tx.To)}, nil
	}
	sym, tok, ok := ch.TokenByAddress(addr(tx.To))
	if !ok {
		return payment{}, refuse(reasonNotPayment, "the transaction calls %s, which is no token of the chain (a payment sends the native coin with no data, or calls a token's transfer)", addr(tx.To))
	}
	if len(tx.Data) != 68 || !bytes.Equal(tx.Data[:4], erc20Transfer) {
		return payment{}, refuse(reasonNotPayment, "the transaction's data is not one ERC20 transfer(address,uint256) call of %s", sym)
	}
	recipient := common.BytesToAddress(tx.Data[4:36])
	units := new(big.Int).SetBytes(tx.Data[36:68])
	// An address argument with bits above its 20 bytes is not the standard
	// encoding: compared byte for byte with the encoding of what it means.
	if !bytes.Equal(tx.Data, transferData(recipient, units)) {
		return payment{}, refuse(reasonNotPayment, "the transaction's data is not the standard encoding of a %s transfer", sym)
	}
	if tx.Value.Sign() != 0 {
		return payment{}, refuse(reasonNotPayment, "the %s transfer also sends %s wei of the native coin", sym, tx.Value)
	}
	return payment{Symbol: sym, Amount: decimal.NewFromBigInt(units, -tok.Decimals), Recipient: addr(recipient)}, nil
}

// transferData is the call data of transfer(to, units).
func transferData(to common.Address, units *big.Int) []byte {
	b := make([]byte, 68)
	copy(b, erc20Transfer)
	copy(b[16:36], to.Bytes())
	units.FillBytes(b[36:68])
	return b
}
