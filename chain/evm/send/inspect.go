package send

import (
	"bytes"
	"context"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"

	"payflow/chain/evm"
)

// Inspection is what Inspect found on chain for a step.
type Inspection struct {
	State chain.TransferState
	// Attempt is the mined attempt when State is TransferMined, else the
	// latest attempt.
	Attempt     evm.SignedTx
	BlockNumber uint64      // TransferMined only
	BlockHash   common.Hash // TransferMined only
	// Succeeded (TransferMined only) is true when the receipt's status is 1
	// and the intended effect is in the receipt: for a token transfer (data
	// transfer(to, units)) Transfer(from, to, …) logs emitted by the token
	// contract moving any units (all of them, or fewer when the token takes
	// a fee: see Received); for a native transfer (no data) the status is
	// enough.
	// A token that returns false, or returns nothing and moves nothing,
	// without reverting is a failed transfer.
	Succeeded bool
	// Reason says in business words why the transfer failed, for
	// TransferDropped or a TransferMined that did not succeed.
	Reason string
	// Token, Units and Received describe a succeeded token transfer: the
	// token contract, the units signed for, and the units its Transfer logs
	// moved from the sender to the recipient. A token that takes a fee on
	// transfer moves fewer than Units: the transfer still moved money, so
	// it succeeded (Received < Units says by how much it fell short).
	// Token is the zero address and Units/Received nil for a native transfer.
	Token    common.Address
	Units    *big.Int
	Received *big.Int
}

// transferSelector is the ERC20 transfer(address,uint256) method id.
var transferSelector = evm.ERC20.Methods["transfer"].ID

// Inspect tells what the chain proves about every attempt of a step: mined
// (and whether the transfer had its effect), dropped (its nonce went to
// another transaction, confirmations deep), or nothing yet. It signs and
// sends nothing and may be called as often as wanted. It resolves
// ErrNonceTooLow from Send or Replace: that error only says a stranger holds
// the nonce at the node's head, which a reorg may still undo; Inspect
// reports TransferDropped once the stranger is confirmations deep.
//
// With no attempt stored: ErrNotSigned. RPC and database errors are returned
// wrapped (transient: retry). confirmations below 1 count as 1.
func (s *Sender) Inspect(ctx context.Context, workflowID, step string, confirmations uint64) (Inspection, error) {
	attempts, err := s.store.Attempts(ctx, workflowID, step)
	if err != nil {
		return Inspection{}, err
	}
	return inspectAttempts(ctx, keepingReceipts{Backend: s.backend, c: &s.recent}, attempts, confirmations)
}

// inspectAttempts judges the attempts of one step (one sender, one nonce).
// A mined attempt needs its receipt only: the receipts are read first, and
// the nonce (at depth) only when none is mined, then the receipts again.
func inspectAttempts(ctx context.Context, backend evm.Backend, attempts []evm.SignedTx, confirmations uint64) (Inspection, error) {
	if in, ok, err := minedOf(ctx, backend, attempts); err != nil || ok {
		return in, err
	}
	latest := attempts[len(attempts)-1]
	// Nonce before receipts: an attempt mined between the two reads then
	// shows as mined, not as dropped.
	consumed, err := nonceConsumedAtDepth(ctx, backend, latest.From, latest.Nonce, confirmations)
	if err != nil {
		return Inspection{}, err
	}
	if in, ok, err := minedOf(ctx, backend, attempts); err != nil || ok {
		return in, err
	}
	if consumed {
		return Inspection{State: chain.TransferDropped, Attempt: latest,
			Reason: fmt.Sprintf("nonce %d of %s was used by another transaction", latest.Nonce, evm.Lower(latest.From))}, nil
	}
	return Inspection{State: chain.TransferPending, Attempt: latest}, nil
}

// minedOf is the inspection of the first of attempts with a receipt; ok is
// false when none has one.
func minedOf(ctx context.Context, backend evm.Backend, attempts []evm.SignedTx) (Inspection, bool, error) {
	for _, a := range attempts {
		r, err := evm.ReceiptOf(ctx, backend, a.Hash)
		if err != nil {
			return Inspection{}, false, err
		}
		if r == nil {
			continue
		}
		a.Mined = true
		in := Inspection{State: chain.TransferMined, Attempt: a, BlockNumber: r.BlockNumber.Uint64(), BlockHash: r.BlockHash}
		in.Succeeded, in.Reason, in.Token, in.Units, in.Received = judgeEffect(a, r)
		return in, true, nil
	}
	return Inspection{}, false, nil
}

// nonceConsumedAtDepth reports whether from's nonce is used by a transaction
// at least confirmations blocks deep (the head counting as one).
func nonceConsumedAtDepth(ctx context.Context, backend evm.Backend, from common.Address, nonce, confirmations uint64) (bool, error) {
	confirmations = max(confirmations, 1)
	head, err := backend.BlockNumber(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the chain head: %w", err)
	}
	if head+1 < confirmations {
		return false, nil
	}
	used, err := backend.NonceAt(ctx, from, new(big.Int).SetUint64(head+1-confirmations))
	if err != nil {
		return false, fmt.Errorf("reading nonce of %s at block %d: %w", evm.Lower(from), head+1-confirmations, err)
	}
	return used > nonce, nil
}

// judgeEffect says whether the mined attempt a did what it was signed for.
// A token transfer succeeded when the token's Transfer logs from the sender
// to the recipient moved any units: a fee-taking token moves fewer than
// signed for, and that transfer moved money (it is paid, never answered as
// failed). It also returns the token, the units signed for and the units
// received (zero address and nils for a native transfer or any other call).
func judgeEffect(a evm.SignedTx, r *types.Receipt) (ok bool, reason string, token common.Address, units, received *big.Int) {
	if r.Status != types.ReceiptStatusSuccessful {
		return false, fmt.Sprintf("transfer %s reverted in block %d", a.Hash.Hex(), r.BlockNumber.Uint64()), token, nil, nil
	}
	var tx types.Transaction
	if err := tx.UnmarshalBinary(a.Raw); err != nil || tx.To() == nil {
		return true, "", token, nil, nil // not ours to judge beyond the status (cannot happen for stored transfers)
	}
	data := tx.Data()
	if len(data) != 4+2*32 || !bytes.Equal(data[:4], transferSelector) {
		return true, "", token, nil, nil // a native transfer, or a call that is no token transfer: the status says it all
	}
	token = *tx.To()
	to := common.BytesToAddress(data[4:36])
	units = new(big.Int).SetBytes(data[36:68])
	received = new(big.Int)
	for _, l := range r.Logs {
		if l.Address == token && len(l.Topics) == 3 && l.Topics[0] == evm.TransferTopic &&
			common.BytesToAddress(l.Topics[1].Bytes()) == a.From && common.BytesToAddress(l.Topics[2].Bytes()) == to {
			received.Add(received, new(big.Int).SetBytes(l.Data))
		}
	}
	if received.Sign() > 0 {
		return true, "", token, units, received
	}
	return false, fmt.Sprintf("token %s reported success but moved no tokens (transfer %s, block %d)",
		evm.Lower(token), a.Hash.Hex(), r.BlockNumber.Uint64()), token, units, received
}
