package btc

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcutil/psbt"
)

// Plan is one unsigned attempt of a payment step: the transaction built
// for it, kept before the signer is asked so that a retry asks for the
// same one. CoinKey holds its inputs in the UTXO set; every attempt of the
// step spends exactly them.
type Plan struct {
	WorkflowID, Step string
	Attempt          int
	Reservation      string
	CoinKey          string
	From, To         string
	Sats             int64
	FeeRate, Fee     int64
	VSize            int
	TxID             string // the unsigned transaction's id (a segwit signature does not change it)
	Packet           *psbt.Packet
}

// errNoPlan: no attempt of that number is planned.
var errNoPlan = errors.New("no plan stored for this attempt")

// Plans is a chain's unsigned payment attempts, in the btc_plans table: the
// only SQL on it.
type Plans struct {
	db    *sql.DB
	chain string
}

// NewPlans returns chain's planned attempts.
func NewPlans(db *sql.DB, chain string) *Plans { return &Plans{db: db, chain: chain} }

// Put stores p unless its attempt is planned already, and returns what is
// stored: the first plan of an attempt wins.
func (s *Plans) Put(ctx context.Context, p Plan) (Plan, error) {
	var buf bytes.Buffer
	if err := p.Packet.Serialize(&buf); err != nil {
		return Plan{}, fmt.Errorf("serialising the PSBT: %w", err)
	}
	_, err := s.db.ExecContext(ctx, `INSERT IGNORE INTO btc_plans (chain, workflow_id, step, attempt, reservation, coin_key,
		from_address, to_address, sats, fee_rate, fee, vsize, txid, psbt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.chain, p.WorkflowID, p.Step, p.Attempt, p.Reservation, p.CoinKey, p.From, p.To, p.Sats, p.FeeRate, p.Fee, p.VSize,
		p.Packet.UnsignedTx.TxHash().String(), buf.Bytes())
	if err != nil {
		return Plan{}, fmt.Errorf("storing the plan of attempt %d of %s/%s: %w", p.Attempt, p.WorkflowID, p.Step, err)
	}
	return s.Get(ctx, p.WorkflowID, p.Step, p.Attempt)
}

// Get returns the plan of one attempt, or errNoPlan.
func (s *Plans) Get(ctx context.Context, workflowID, step string, attempt int) (Plan, error) {
	p := Plan{WorkflowID: workflowID, Step: step, Attempt: attempt}
	var raw []byte
	err := s.db.QueryRowContext(ctx, `SELECT reservation, coin_key, from_address, to_address, sats, fee_rate, fee, vsize, txid, psbt
		FROM btc_plans WHERE chain = ? AND workflow_id = ? AND step = ? AND attempt = ?`, s.chain, workflowID, step, attempt).
		Scan(&p.Reservation, &p.CoinKey, &p.From, &p.To, &p.Sats, &p.FeeRate, &p.Fee, &p.VSize, &p.TxID, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return Plan{}, fmt.Errorf("attempt %d of %s/%s: %w", attempt, workflowID, step, errNoPlan)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("reading the plan of attempt %d of %s/%s: %w", attempt, workflowID, step, err)
	}
	if p.Packet, err = psbt.NewFromRawBytes(bytes.NewReader(raw), false); err != nil {
		return Plan{}, fmt.Errorf("decoding the plan of attempt %d of %s/%s: %w", attempt, workflowID, step, err)
	}
	return p, nil
}
