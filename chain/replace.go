package chain

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/shopspring/decimal"
)

// Replace signs, stores and sends a fee-bumped replacement for a step whose
// transaction is stuck in the pool: attempt latest+1 on the same nonce, with
// the same recipient, data and gas, and a tip and fee cap each at least 12.5%
// above the latest attempt's (geth's pool replaces on 10%) and at least what
// the network suggests now, the fee cap held to MaxFeeWei. As with
// SignTransfer the replacement is stored before it is sent, and the wallet's
// key is opened for the signature and zeroed after it.
//
// Edge cases:
//   - No attempt stored: ErrNotSigned.
//   - An attempt already has a receipt (mined, reverted included): that
//     attempt is returned with Mined=true and nothing is signed.
//   - The nonce was used on chain by a transaction that is none of the
//     step's attempts: ErrNonceTooLow, nothing signed.
//   - The step has MaxAttempts attempts: ErrTooManyAttempts.
//   - Even the minimal bump is above MaxFeeWei: ErrFeeCapExceeded; not
//     enough ether for the new fee cap: ErrInsufficientGas. Nothing stored.
//   - Two Replace calls that read the same latest attempt race for one
//     (workflow_id, step, attempt) key: one stores it, the other returns it
//     with Replayed=true. Both send it.
//   - Storing succeeded but sending failed: the new attempt stays stored and
//     is the latest, so Send re-sends it. Calling Replace again signs yet
//     another attempt instead.
//
// Every call that finds nothing mined signs one more attempt: call it when a
// transaction has been stuck for a while, not as a retry. Until one attempt
// is mined, any of them may be; the caller tracks them all (see Attempts).
func (b *Broadcaster) Replace(ctx context.Context, workflowID, step string) (SignedTx, error) {
	attempts, err := b.Attempts(ctx, workflowID, step)
	if err != nil {
		return SignedTx{}, err
	}
	latest := attempts[len(attempts)-1]
	// Nonce before receipts: an attempt mined between the two reads then
	// shows as mined, not as a stranger holding the nonce.
	used, err := b.backend.NonceAt(ctx, latest.From, nil)
	if err != nil {
		return SignedTx{}, fmt.Errorf("reading nonce of %s: %w", Lower(latest.From), err)
	}
	if mined, ok, err := b.minedAttempt(ctx, attempts); err != nil || ok {
		return mined, err
	}
	if used > latest.Nonce {
		return latest, fmt.Errorf("replacing %s/%s: nonce %d of %s: %w", workflowID, step, latest.Nonce,
			Lower(latest.From), ErrNonceTooLow)
	}
	if len(attempts) >= b.cfg.MaxAttempts {
		return latest, fmt.Errorf("replacing %s/%s after %d attempts: %w", workflowID, step, len(attempts), ErrTooManyAttempts)
	}

	var prev types.Transaction
	if err := prev.UnmarshalBinary(latest.Raw); err != nil {
		return SignedTx{}, fmt.Errorf("decoding stored transaction %s: %w", latest.Hash.Hex(), err)
	}
	tip, feeCap, err := b.replacementFees(ctx, &prev)
	if err != nil {
		return SignedTx{}, fmt.Errorf("replacing %s/%s: %w", workflowID, step, err)
	}
	need := new(big.Int).Mul(feeCap, new(big.Int).SetUint64(prev.Gas()))
	need.Add(need, prev.Value())
	if err := b.requireNative(ctx, latest.From, need, "the replacement"); err != nil {
		return SignedTx{}, err
	}
	signed, err := b.signReplacement(ctx, latest.From, &types.DynamicFeeTx{
		ChainID: b.cfg.ChainID, Nonce: prev.Nonce(), GasTipCap: tip, GasFeeCap: feeCap, Gas: prev.Gas(),
		To: prev.To(), Value: prev.Value(), Data: prev.Data(), AccessList: prev.AccessList(),
	})
	if err != nil {
		return SignedTx{}, err
	}
	raw, err := signed.MarshalBinary()
	if err != nil {
		return SignedTx{}, err
	}
	next := SignedTx{WorkflowID: workflowID, Step: step, Attempt: latest.Attempt + 1, From: latest.From,
		Nonce: latest.Nonce, Hash: signed.Hash(), Raw: raw}
	_, err = b.db.ExecContext(ctx, `INSERT INTO signed_txs
		(workflow_id, step, attempt, chain, from_address, to_address, nonce, tx_hash, raw, max_fee_wei, tip_wei)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		workflowID, step, next.Attempt, b.cfg.Chain, Lower(next.From), Lower(*prev.To()), next.Nonce, next.Hash.Hex(), raw,
		decimal.NewFromBigInt(feeCap, 0), decimal.NewFromBigInt(tip, 0))
	switch {
	case isDuplicateKey(err):
		// A concurrent Replace stored this attempt first; send what it stored.
		if next, err = b.Stored(ctx, workflowID, step); err != nil {
			return SignedTx{}, err
		}
		next.Replayed = true
	case err != nil:
		return SignedTx{}, fmt.Errorf("storing replacement of %s/%s: %w", workflowID, step, err)
	default:
		b.log.Info("signed replacement", "workflow_id", workflowID, "step", step, "tx_hash", next.Hash.Hex(),
			"replaces", latest.Hash.Hex(), "address", Lower(next.From), "nonce", next.Nonce, "attempt", next.Attempt,
			"tip_wei", tip.String(), "max_fee_wei", feeCap.String())
	}
	return b.send(ctx, next)
}

// Attempts returns every stored attempt of a step, the original first, so
// the caller can follow all of their hashes: until one is mined, any may be.
// With none stored it returns ErrNotSigned.
func (b *Broadcaster) Attempts(ctx context.Context, workflowID, step string) ([]SignedTx, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT `+signedColumns+` FROM signed_txs
		WHERE workflow_id=? AND step=? ORDER BY attempt`, workflowID, step)
	if err != nil {
		return nil, fmt.Errorf("listing attempts of %s/%s: %w", workflowID, step, err)
	}
	defer rows.Close()
	var out []SignedTx
	for rows.Next() {
		s, err := scanSigned(rows)
		if err != nil {
			return nil, fmt.Errorf("reading attempts of %s/%s: %w", workflowID, step, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing attempts of %s/%s: %w", workflowID, step, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s/%s: %w", workflowID, step, ErrNotSigned)
	}
	return out, nil
}

// minedAttempt returns the attempt that has a receipt, with Mined=true.
// They share a nonce, so at most one can.
func (b *Broadcaster) minedAttempt(ctx context.Context, attempts []SignedTx) (SignedTx, bool, error) {
	for _, a := range attempts {
		r, err := b.backend.TransactionReceipt(ctx, a.Hash)
		if errors.Is(err, ethereum.NotFound) || (err == nil && r == nil) {
			continue
		}
		if err != nil {
			return SignedTx{}, false, fmt.Errorf("reading receipt of %s: %w", a.Hash.Hex(), err)
		}
		a.Mined = true
		return a, true, nil
	}
	return SignedTx{}, false, nil
}

// replacementFees returns the tip and fee cap of a replacement for prev:
// each at least bumpFee(prev's), raised to what the network asks now (2×base
// fee + suggested tip, as for a first signature), the fee cap held to
// MaxFeeWei. A capped replacement may not be mined while the base fee stays
// above the cap, but it is the most the configuration allows.
func (b *Broadcaster) replacementFees(ctx context.Context, prev *types.Transaction) (tip, feeCap *big.Int, err error) {
	minTip, minFee := bumpFee(prev.GasTipCap()), bumpFee(prev.GasFeeCap())
	if minFee.Cmp(b.cfg.MaxFeeWei) > 0 {
		return nil, nil, fmt.Errorf("bumped fee cap %s wei > cap %s: %w", minFee, b.cfg.MaxFeeWei, ErrFeeCapExceeded)
	}
	base, suggested, err := b.networkFees(ctx)
	if err != nil {
		return nil, nil, err
	}
	tip = maxWei(minTip, suggested)
	feeCap = maxWei(minFee, new(big.Int).Add(new(big.Int).Mul(base, big.NewInt(2)), tip))
	if feeCap.Cmp(b.cfg.MaxFeeWei) > 0 {
		feeCap = new(big.Int).Set(b.cfg.MaxFeeWei) // still >= minFee, checked above
	}
	if tip.Cmp(feeCap) > 0 {
		tip = new(big.Int).Set(feeCap) // still >= minTip: a tip never exceeds its fee cap
	}
	return tip, feeCap, nil
}

// bumpFee returns x raised by 12.5%, rounded up, and by at least 1 wei: the pool
// wants both fees strictly higher and at least 10% higher.
func bumpFee(x *big.Int) *big.Int {
	step := new(big.Int).Add(x, big.NewInt(7))
	step.Rsh(step, 3)
	if step.Sign() == 0 {
		step.SetInt64(1)
	}
	return step.Add(step, x)
}

func maxWei(a, b *big.Int) *big.Int {
	if a.Cmp(b) >= 0 {
		return new(big.Int).Set(a)
	}
	return new(big.Int).Set(b)
}

// signReplacement opens from's key for one signature and zeroes it after.
func (b *Broadcaster) signReplacement(ctx context.Context, from common.Address, inner *types.DynamicFeeTx) (*types.Transaction, error) {
	key, err := b.keys.Key(ctx, b.cfg.Chain, Lower(from))
	if err != nil {
		return nil, fmt.Errorf("opening key of %s: %w", Lower(from), err)
	}
	defer key.D.SetInt64(0)
	signed, err := types.SignNewTx(key, b.signer, inner)
	if err != nil {
		return nil, fmt.Errorf("signing replacement from %s: %w", Lower(from), err)
	}
	return signed, nil
}
