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

// Get returns the step's signing intent, or ErrNoIntent.
func (s *Intents) Get(ctx context.Context, workflowID, step string) (SignIntent, error) {
	var in SignIntent
	var from, to, value, tip, feeCap string
	err := s.db.QueryRowContext(ctx, `SELECT workflow_id, step, reservation_key, from_address, nonce, to_address,
		value_wei, data, gas, tip_wei, max_fee_wei, state, reason
		FROM sign_intents WHERE chain=? AND workflow_id=? AND step=?`, s.chain, workflowID, step).Scan(
		&in.WorkflowID, &in.Step, &in.Reservation, &from, &in.Nonce, &to, &value, &in.Data, &in.Gas, &tip, &feeCap,
		&in.State, &in.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return SignIntent{}, fmt.Errorf("%s/%s: %w", workflowID, step, ErrNoIntent)
	}
	if err != nil {
		return SignIntent{}, fmt.Errorf("reading the intent of %s/%s: %w", workflowID, step, err)
	}
	in.From, in.To = common.HexToAddress(from), common.HexToAddress(to)
	for _, f := range []struct {
		dst **big.Int
		s   string
	}{{&in.Value, value}, {&in.TipCap, tip}, {&in.FeeCap, feeCap}} {
		n, ok := new(big.Int).SetString(f.s, 10)
		if !ok {
			return SignIntent{}, fmt.Errorf("intent of %s/%s: %q is not an amount of wei", workflowID, step, f.s)
		}
		*f.dst = n
	}
	return in, nil
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
