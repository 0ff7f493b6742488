package signer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"payflow/custody/signerapi"
	"payflow/internal/sqlerr"
	"payflow/internal/sqlrows"
)

// btcSigned is one row of signer_btc_steps: a signed attempt of a step on
// a Bitcoin chain.
type btcSigned struct {
	step
	From       string
	Recipient  string
	AmountSats int64
	FeeSats    int64
	TxID       string
	Raw        []byte
}

// outpoint names one output of a transaction; sats is what it holds.
type outpoint struct {
	TxID string
	Vout uint32
	Sats int64
}

func (o outpoint) String() string { return fmt.Sprintf("%s:%d", o.TxID, o.Vout) }

// spender is the step whose transactions spend an output.
type spender struct {
	outpoint
	WorkflowID, Step string
}

const btcStepColumns = "chain, workflow_id, step, attempt, reservation_key, from_address, recipient, amount_sats, fee_sats, txid, raw"

func scanBTCStep(row sqlrows.Scanner) (s btcSigned, err error) {
	err = row.Scan(&s.Chain, &s.WorkflowID, &s.Step, &s.Attempt, &s.Reservation, &s.From, &s.Recipient, &s.AmountSats, &s.FeeSats,
		&s.TxID, &s.Raw)
	return s, err
}

// btcStep reads a signed attempt; ok is false when it was never signed.
func (st *store) btcStep(ctx context.Context, chain, workflowID, stepName string, attempt int) (btcSigned, bool, error) {
	s, err := scanBTCStep(st.db.QueryRowContext(ctx, "SELECT "+btcStepColumns+
		" FROM signer_btc_steps WHERE chain=? AND workflow_id=? AND step=? AND attempt=?", chain, workflowID, stepName, attempt))
	if errors.Is(err, sql.ErrNoRows) {
		return btcSigned{}, false, nil
	}
	if err != nil {
		return btcSigned{}, false, fmt.Errorf("reading step %s attempt %d of workflow %s: %w", stepName, attempt, workflowID, err)
	}
	return s, true, nil
}

// btcPaidBy reads the first attempt that paid with reservation on chain.
func (st *store) btcPaidBy(ctx context.Context, chain, reservation string) (btcSigned, bool, error) {
	s, err := scanBTCStep(st.db.QueryRowContext(ctx, "SELECT "+btcStepColumns+" FROM signer_btc_steps WHERE chain=? AND res0=?",
		chain, reservation))
	if errors.Is(err, sql.ErrNoRows) {
		return btcSigned{}, false, nil
	}
	if err != nil {
		return btcSigned{}, false, fmt.Errorf("reading the step paid by reservation %s: %w", reservation, err)
	}
	return s, true, nil
}

// btcInputsOf reads the outputs a step's transactions spend (stored with
// its attempt 0), ordered by outpoint.
func (st *store) btcInputsOf(ctx context.Context, chain, workflowID, stepName string) ([]outpoint, error) {
	out, err := sqlrows.Collect(ctx, st.db, func(row sqlrows.Scanner) (o outpoint, err error) {
		err = row.Scan(&o.TxID, &o.Vout, &o.Sats)
		return o, err
	}, "SELECT txid, vout, sats FROM signer_btc_inputs WHERE chain=? AND workflow_id=? AND step=? ORDER BY txid, vout",
		chain, workflowID, stepName)
	if err != nil {
		return nil, fmt.Errorf("reading the inputs of step %s of workflow %s: %w", stepName, workflowID, err)
	}
	return out, nil
}

// btcSpenders reads which steps spend any of outs, ordered by outpoint.
func (st *store) btcSpenders(ctx context.Context, chain string, outs []outpoint) ([]spender, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	cond := strings.Repeat("(txid=? AND vout=?) OR ", len(outs))
	args := []any{chain}
	for _, o := range outs {
		args = append(args, o.TxID, o.Vout)
	}
	out, err := sqlrows.Collect(ctx, st.db, func(row sqlrows.Scanner) (s spender, err error) {
		err = row.Scan(&s.TxID, &s.Vout, &s.Sats, &s.WorkflowID, &s.Step)
		return s, err
	}, "SELECT txid, vout, sats, workflow_id, step FROM signer_btc_inputs WHERE chain=? AND ("+strings.TrimSuffix(cond, " OR ")+
		") ORDER BY txid, vout", args...)
	if err != nil {
		return nil, fmt.Errorf("reading who spends %d outputs: %w", len(outs), err)
	}
	return out, nil
}

// errInputTaken: another step's transactions spend one of the inputs.
var errInputTaken = errors.New("an input is spent by another step")

// insertBTCSigned stores a signed attempt, with its inputs when it is
// attempt 0, and its audit entry in one transaction. A concurrent insert of
// the same attempt fails with errDuplicateStep, of the same reservation by
// another step with errReservationTaken, of one of the inputs by another
// step with errInputTaken; nothing is stored then.
func (st *store) insertBTCSigned(ctx context.Context, s btcSigned, inputs []outpoint) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storing %s: %w", s.step, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, "INSERT INTO signer_btc_steps ("+btcStepColumns+") VALUES (?,?,?,?,?,?,?,?,?,?,?)",
		s.Chain, s.WorkflowID, s.Step, s.Attempt, s.Reservation, s.From, s.Recipient, s.AmountSats, s.FeeSats, s.TxID, s.Raw)
	if sqlerr.IsDuplicateKey(err) {
		if strings.Contains(err.Error(), "uq_signer_btc_steps_reservation") {
			return errReservationTaken
		}
		return errDuplicateStep
	}
	if err != nil {
		return fmt.Errorf("storing %s: %w", s.step, err)
	}
	if s.Attempt == 0 {
		q := "INSERT INTO signer_btc_inputs (chain, txid, vout, sats, workflow_id, step) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?),", len(inputs)), ",")
		var args []any
		for _, o := range inputs {
			args = append(args, s.Chain, o.TxID, o.Vout, o.Sats, s.WorkflowID, s.Step)
		}
		_, err = tx.ExecContext(ctx, q, args...)
		if sqlerr.IsDuplicateKey(err) {
			return errInputTaken
		}
		if err != nil {
			return fmt.Errorf("storing the inputs of %s: %w", s.step, err)
		}
	}
	if err := insertAudit(ctx, tx, auditEntry{step: s.step, From: s.From, TxHash: s.TxID, Verdict: signerapi.VerdictSigned}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storing %s: %w", s.step, err)
	}
	return nil
}
