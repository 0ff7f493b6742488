package evm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/shopspring/decimal"

	"payflow/internal/sqlerr"
)

// Intent states (sign_intents.state).
const (
	IntentOpen    = "open"    // asked of the signer, or to be asked; nothing refused
	IntentRefused = "refused" // the signer refused it: its nonce is the healer's to fill
	IntentFilled  = "filled"  // the healer used its nonce for a gap filler
)

// ErrNoIntent: no signing intent is stored for the step.
var ErrNoIntent = errors.New("no signing intent stored for this step")

// SignIntent is attempt 0 of a step exactly as the signer is asked for it,
// stored with its nonce before the signer is asked (a row of sign_intents).
// The nonce is taken by the intent: asking again after a crash asks for this
// same transaction, which the signer answers with the signature it kept.
type SignIntent struct {
	WorkflowID  string
	Step        string
	Reservation string
	From        common.Address
	Nonce       uint64
	To          common.Address
	Value       *big.Int
	Data        []byte
	Gas         uint64
	TipCap      *big.Int
	FeeCap      *big.Int
	State       string // IntentOpen, IntentRefused or IntentFilled
	Reason      string // the signer's refusal, when refused
}

// Tx is the unsigned transaction the intent asks for (chain id unset).
func (in SignIntent) Tx() *types.DynamicFeeTx {
	to := in.To
	return &types.DynamicFeeTx{Nonce: in.Nonce, GasTipCap: new(big.Int).Set(in.TipCap),
		GasFeeCap: new(big.Int).Set(in.FeeCap), Gas: in.Gas, To: &to, Value: new(big.Int).Set(in.Value),
		Data: append([]byte(nil), in.Data...)}
}

// IntentOf is the intent of inner (its nonce set when the lane hands one
// out), from's attempt 0 of (workflowID, step) for reservation's money.
func IntentOf(workflowID, step, reservation string, from common.Address, inner *types.DynamicFeeTx) SignIntent {
	in := SignIntent{WorkflowID: workflowID, Step: step, Reservation: reservation, From: from, Nonce: inner.Nonce,
		Value: new(big.Int), Data: append([]byte{}, inner.Data...), Gas: inner.Gas,
		TipCap: new(big.Int).Set(inner.GasTipCap), FeeCap: new(big.Int).Set(inner.GasFeeCap), State: IntentOpen}
	if inner.To != nil {
		in.To = *inner.To
	}
	if inner.Value != nil {
		in.Value.Set(inner.Value)
	}
	return in
}

// Intents is one chain's rows of the sign_intents table: per step, its
// attempt 0 as the signer is asked for it, with the nonce it took.
type Intents struct{ chainTable }

// IntentsOf is the signing intents of store's chain and database: the
// intents hold the nonces the stored transactions are then signed on.
func IntentsOf(store *TxStore) *Intents { return &Intents{store.chainTable} }

// Insert stores in within tx (nil: on its own), in one statement.
// When the step already has an intent, or in's nonce is held by another
// intent of from, it fails with ErrAttemptExists and stores nothing.
func (s *Intents) Insert(ctx context.Context, tx *sql.Tx, in SignIntent) error {
	var exec interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	} = s.db
	if tx != nil {
		exec = tx
	}
	_, err := exec.ExecContext(ctx, `INSERT INTO sign_intents
		(chain, workflow_id, step, reservation_key, from_address, nonce, to_address, value_wei, data, gas, tip_wei, max_fee_wei)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		s.chain, in.WorkflowID, in.Step, in.Reservation, Lower(in.From), in.Nonce, Lower(in.To),
		decimal.NewFromBigInt(in.Value, 0), in.Data, in.Gas, decimal.NewFromBigInt(in.TipCap, 0),
		decimal.NewFromBigInt(in.FeeCap, 0))
	if sqlerr.IsDuplicateKey(err) {
		return fmt.Errorf("intent of %s/%s on nonce %d: %w", in.WorkflowID, in.Step, in.Nonce, ErrAttemptExists)
	}
	if err != nil {
		return fmt.Errorf("storing the intent of %s/%s: %w", in.WorkflowID, in.Step, err)
	}
	return nil
}

// intentColumns are an intent's columns (i) as nullIntent scans them.
const intentColumns = `i.workflow_id, i.step, i.reservation_key, i.from_address, i.nonce, i.to_address,
	i.value_wei, i.data, i.gas, i.tip_wei, i.max_fee_wei, i.state, i.reason`

// nullIntent scans intentColumns, all NULL when a LEFT JOIN found no
// intent.
type nullIntent struct {
	wf, step, reservation, from, to, value, tip, feeCap, state, reason sql.NullString
	nonce, gas                                                         sql.NullInt64
	data                                                               []byte
}

func (n *nullIntent) dest() []any {
	return []any{&n.wf, &n.step, &n.reservation, &n.from, &n.nonce, &n.to, &n.value, &n.data, &n.gas, &n.tip, &n.feeCap,
		&n.state, &n.reason}
}

// intent is the scanned intent of workflowID/step (ok false: none).
func (n *nullIntent) intent(workflowID, step string) (in SignIntent, ok bool, err error) {
	if !n.wf.Valid {
		return SignIntent{}, false, nil
	}
	in = SignIntent{WorkflowID: n.wf.String, Step: n.step.String, Reservation: n.reservation.String,
		From: common.HexToAddress(n.from.String), Nonce: uint64(n.nonce.Int64), To: common.HexToAddress(n.to.String),
		Data: n.data, Gas: uint64(n.gas.Int64), State: n.state.String, Reason: n.reason.String}
	for _, f := range []struct {
		dst **big.Int
		s   string
	}{{&in.Value, n.value.String}, {&in.TipCap, n.tip.String}, {&in.FeeCap, n.feeCap.String}} {
		v, ok := new(big.Int).SetString(f.s, 10)
		if !ok {
			return SignIntent{}, false, fmt.Errorf("intent of %s/%s: %q is not an amount of wei", workflowID, step, f.s)
		}
		*f.dst = v
	}
	return in, true, nil
}

// Get returns the step's signing intent, or ErrNoIntent.
func (s *Intents) Get(ctx context.Context, workflowID, step string) (SignIntent, error) {
	var n nullIntent
	err := s.db.QueryRowContext(ctx, `SELECT `+intentColumns+` FROM sign_intents i WHERE i.chain=? AND i.workflow_id=? AND i.step=?`,
		s.chain, workflowID, step).Scan(n.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return SignIntent{}, fmt.Errorf("%s/%s: %w", workflowID, step, ErrNoIntent)
	}
	if err != nil {
		return SignIntent{}, fmt.Errorf("reading the intent of %s/%s: %w", workflowID, step, err)
	}
	in, _, err := n.intent(workflowID, step)
	return in, err
}

// Begun reads, in one statement, what a step has stored towards its
// transfer: its latest signed attempt (signed), and its signing intent
// (begun). A new step has neither.
func (s *Intents) Begun(ctx context.Context, workflowID, step string) (stx SignedTx, signed bool, in SignIntent, begun bool, err error) {
	var sn struct {
		wf, step, from, hash, state sql.NullString
		attempt, nonce              sql.NullInt64
		raw                         []byte
	}
	var n nullIntent
	err = s.db.QueryRowContext(ctx, `SELECT s.workflow_id, s.step, s.attempt, s.from_address, s.nonce, s.tx_hash, s.raw, s.state, `+
		intentColumns+` FROM (SELECT 1) one
		LEFT JOIN (SELECT `+signedColumns+` FROM signed_txs WHERE chain=? AND workflow_id=? AND step=? ORDER BY attempt DESC LIMIT 1) s ON TRUE
		LEFT JOIN sign_intents i ON i.chain=? AND i.workflow_id=? AND i.step=?`,
		s.chain, workflowID, step, s.chain, workflowID, step).
		Scan(append([]any{&sn.wf, &sn.step, &sn.attempt, &sn.from, &sn.nonce, &sn.hash, &sn.raw, &sn.state}, n.dest()...)...)
	if err != nil {
		return SignedTx{}, false, SignIntent{}, false, fmt.Errorf("reading what %s/%s stored: %w", workflowID, step, err)
	}
	if sn.wf.Valid {
		stx, signed = SignedTx{WorkflowID: sn.wf.String, Step: sn.step.String, Attempt: int(sn.attempt.Int64),
			From: common.HexToAddress(sn.from.String), Nonce: uint64(sn.nonce.Int64), Hash: common.HexToHash(sn.hash.String),
			Raw: sn.raw, State: sn.state.String}, true
	}
	in, begun, err = n.intent(workflowID, step)
	return stx, signed, in, begun, err
}

// Refuse records the signer's refusal of the step's intent: its nonce
// holds no transaction, and the healer fills it.
func (s *Intents) Refuse(ctx context.Context, workflowID, step, reason string) error {
	if r := []rune(reason); len(r) > 1024 {
		reason = string(r[:1024])
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE sign_intents SET state='refused', reason=?, refused_at=NOW(6)
		WHERE chain=? AND workflow_id=? AND step=? AND state='open'`, reason, s.chain, workflowID, step); err != nil {
		return fmt.Errorf("recording the refusal of %s/%s: %w", workflowID, step, err)
	}
	return nil
}
