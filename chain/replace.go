package chain

import (
	"context"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/shopspring/decimal"
)

// Replace makes sure attempt number attempt of a step exists and is sent:
// the original is attempt 0, so the first replacement is attempt 1. It is
// idempotent per attempt number, so a retry of the same logical replacement
// (a Temporal retry after a send error, a replay, a reset) signs nothing new.
//
// When an attempt numbered attempt or higher is already stored, nothing is
// signed: the stored attempt attempt is sent again (the same bytes) and
// returned with Replayed=true. Otherwise attempt latest+1 is signed, stored
// and sent: the same nonce, recipient, data and gas, and a tip and fee cap
// each at least 12.5% above the latest attempt's (geth's pool replaces on
// 10%) and at least what the network suggests now, the fee cap held to
// MaxFeeWei. As with SignTransfer the replacement is stored before it is
// sent, and the wallet's key is opened for the signature and zeroed after it.
//
// Edge cases:
//   - No attempt stored: ErrNotSigned.
//   - An attempt already has a receipt (mined, reverted included): that
//     attempt is returned with Mined=true and nothing is signed.
//   - The nonce was used on chain by a transaction that is none of the
//     step's attempts: ErrNonceTooLow (wrapped), nothing signed. This is not
//     yet proof of failure (the chain may still reorganise); the caller
//     resolves it with Inspect, which reports TransferDropped once the
//     stranger is confirmations deep.
//   - The step has MaxAttempts attempts: ErrTooManyAttempts.
//   - Even the minimal bump is above MaxFeeWei: ErrFeeCapExceeded; not
//     enough ether for the new fee cap: ErrInsufficientGas. Nothing stored.
//   - Two Replace calls that read the same latest attempt race for one
//     (workflow_id, step, attempt) key: one stores it, the other returns it
//     with Replayed=true. Both send it.
//   - Storing succeeded but sending failed: the new attempt stays stored and
//     is the latest; calling Replace again with the same attempt re-sends it.
//   - A replayed attempt lower than the latest (the caller was reset to an
//     earlier point) is refused by a pool holding a dearer attempt: the
//     latest attempt is sent instead, and the requested one returned.
//
// Until one attempt is mined, any of them may be; the caller tracks them all
// (see Attempts).
func (b *Broadcaster) Replace(ctx context.Context, workflowID, step string, attempt int) (SignedTx, error) {
	attempts, err := b.Attempts(ctx, workflowID, step)
	if err != nil {
		return SignedTx{}, err
	}
	latest := attempts[len(attempts)-1]
	if latest.Attempt >= attempt {
		return b.resendAttempt(ctx, attempts, max(attempt, 0))
	}
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

// resendAttempt sends the stored attempt numbered n again and returns it
// with Replayed=true (or the mined attempt, with Mined=true, as send does).
func (b *Broadcaster) resendAttempt(ctx context.Context, attempts []SignedTx, n int) (SignedTx, error) {
	var want *SignedTx
	for i := range attempts {
		if attempts[i].Attempt == n {
			want = &attempts[i]
		}
	}
	latest := attempts[len(attempts)-1]
	if want == nil { // attempt numbers have no holes; a gap filler row is no replacement
		return SignedTx{}, fmt.Errorf("%s/%s has no attempt %d: %w", latest.WorkflowID, latest.Step, n, ErrNotSigned)
	}
	got, err := b.send(ctx, *want)
	if err != nil && isUnderpriced(err) && latest.Attempt > n {
		// The pool holds a dearer attempt of ours (or a stranger's): keep the latest in it.
		if _, err = b.send(ctx, latest); err == nil {
			got = *want
		}
	}
	if err != nil {
		return got, err
	}
	got.Replayed = true
	return got, nil
}

// Attempts returns every stored attempt of a step, the original first, so
// the caller can follow all of their hashes: until one is mined, any may be.
// With none stored it returns ErrNotSigned.
func (b *Broadcaster) Attempts(ctx context.Context, workflowID, step string) ([]SignedTx, error) {
	return loadAttempts(ctx, b.db, workflowID, step)
}

// minedAttempt returns the attempt that has a receipt, with Mined=true.
// They share a nonce, so at most one can.
func (b *Broadcaster) minedAttempt(ctx context.Context, attempts []SignedTx) (SignedTx, bool, error) {
	for _, a := range attempts {
		r, err := receiptOf(ctx, b.backend, a.Hash)
		if err != nil {
			return SignedTx{}, false, err
		}
		if r != nil {
			a.Mined = true
			return a, true, nil
		}
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
