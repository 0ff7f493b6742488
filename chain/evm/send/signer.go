package send

import (
	"context"
	"crypto/ecdsa"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"

	"payflow/chain/evm"
)

// KeySource opens a sending wallet's key for the moment of signing.
// ledger.Wallets satisfies it.
type KeySource interface {
	Key(ctx context.Context, chain, address string) (*ecdsa.PrivateKey, error)
}

// SignerConfig configures a Signer.
type SignerConfig struct {
	Chain   string   // protocol chain name, e.g. "ETH"; the key source is asked for this chain's keys
	ChainID *big.Int // EIP-155 chain id
}

// TransferRequest is one token transfer to sign.
type TransferRequest struct {
	WorkflowID string
	Step       string // e.g. "transfer"; unique within the workflow
	From       common.Address
	To         common.Address
	Token      common.Address
	Units      *big.Int // token base units
}

// NativeTransferRequest is one transfer of the chain's native coin (ETH), such
// as a gas top-up of a deposit wallet before it sweeps its tokens.
type NativeTransferRequest struct {
	WorkflowID string
	Step       string // unique within the workflow, e.g. "gas-topup"
	From       common.Address
	To         common.Address
	Wei        *big.Int
}

// Signer signs each transfer exactly once per (workflow id, step) and stores
// it before anything is sent, with its nonce from the NonceAllocator. It
// checks first that the sender can pay (tokens, and ether for the most the
// gas may cost), and opens the sender's key only for the signature, zeroing
// it after. Sending is the Sender's.
type Signer struct {
	cfg      SignerConfig
	signer   types.Signer
	store    *evm.TxStore
	nonces   NonceAllocator
	fees     *FeeOracle
	balances *evm.Balances
	keys     KeySource
	log      *slog.Logger
}

// NewSigner wires a Signer. ChainID is required.
func NewSigner(cfg SignerConfig, store *evm.TxStore, nonces NonceAllocator, fees *FeeOracle, balances *evm.Balances, keys KeySource,
	log *slog.Logger) (*Signer, error) {
	if cfg.ChainID == nil || cfg.ChainID.Sign() <= 0 {
		return nil, errors.New("signer: chain id is required")
	}
	if store == nil || nonces == nil || fees == nil || balances == nil {
		return nil, errors.New("signer: store, nonce allocator, fee oracle and balances are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Signer{cfg: cfg, signer: types.LatestSignerForChainID(cfg.ChainID), store: store, nonces: nonces, fees: fees,
		balances: balances, keys: keys, log: log}, nil
}

// SignTransfer signs the transfer once and stores it before anything is sent.
// Called again for the same (WorkflowID, Step) it returns the stored
// transaction with Replayed=true and signs nothing: a retry, a crashed worker
// or a Temporal reset can never produce a second transfer. A sender short of
// tokens fails with ErrInsufficientToken, short of ether for the most the gas
// may cost with ErrInsufficientGas, a network fee above the cap with
// ErrFeeCapExceeded: nothing is stored, no key opened.
func (s *Signer) SignTransfer(ctx context.Context, req TransferRequest) (evm.SignedTx, error) {
	if stx, err := s.storedReplay(ctx, req.WorkflowID, req.Step); !errors.Is(err, chain.ErrNotSigned) {
		return stx, err
	}
	data, err := evm.ERC20.Pack("transfer", req.To, req.Units)
	if err != nil {
		return evm.SignedTx{}, fmt.Errorf("packing transfer: %w", err)
	}
	if err := s.balances.RequireToken(ctx, req.Token, req.From, req.Units); err != nil {
		return evm.SignedTx{}, err
	}
	gas, err := s.fees.TransferGas(ctx, req.Token, req.From, req.To, req.Units)
	if err != nil {
		return evm.SignedTx{}, err
	}
	tip, maxFee, err := s.fees.Fees(ctx)
	if err != nil {
		return evm.SignedTx{}, err
	}
	if err := s.balances.RequireNative(ctx, req.From, gasCost(maxFee, gas), "gas"); err != nil {
		return evm.SignedTx{}, err
	}
	return s.signAndStore(ctx, req.WorkflowID, req.Step, req.From,
		&types.DynamicFeeTx{GasTipCap: tip, GasFeeCap: maxFee, Gas: gas, To: &req.Token, Data: data})
}

// SignNative signs a native transfer once and stores it before anything is
// sent, exactly like SignTransfer: called again for the same (WorkflowID,
// Step) it returns the stored transaction with Replayed=true and signs
// nothing. It draws its nonce from From's own lane, so it never waits behind
// (or holds up) another wallet's transfers. A sender that cannot pay Wei plus
// the most the gas may cost fails with ErrInsufficientGas; Wei ≤ 0 fails with
// ErrBadAmount.
func (s *Signer) SignNative(ctx context.Context, req NativeTransferRequest) (evm.SignedTx, error) {
	if stx, err := s.storedReplay(ctx, req.WorkflowID, req.Step); !errors.Is(err, chain.ErrNotSigned) {
		return stx, err
	}
	if req.Wei == nil || req.Wei.Sign() <= 0 {
		return evm.SignedTx{}, fmt.Errorf("sending %v wei: %w", req.Wei, chain.ErrBadAmount)
	}
	gas, err := s.fees.NativeGas(ctx, req.From, req.To, req.Wei)
	if err != nil {
		return evm.SignedTx{}, err
	}
	tip, maxFee, err := s.fees.Fees(ctx)
	if err != nil {
		return evm.SignedTx{}, err
	}
	need := new(big.Int).Add(req.Wei, gasCost(maxFee, gas))
	if err := s.balances.RequireNative(ctx, req.From, need, "sending "+req.Wei.String()+" wei with gas"); err != nil {
		return evm.SignedTx{}, err
	}
	to := req.To
	return s.signAndStore(ctx, req.WorkflowID, req.Step, req.From,
		&types.DynamicFeeTx{GasTipCap: tip, GasFeeCap: maxFee, Gas: gas, To: &to, Value: new(big.Int).Set(req.Wei)})
}

// storedReplay returns the step's stored transaction with Replayed=true, or
// ErrNotSigned (wrapped) when there is none yet.
func (s *Signer) storedReplay(ctx context.Context, workflowID, step string) (evm.SignedTx, error) {
	stx, err := s.store.Stored(ctx, workflowID, step)
	if err != nil {
		return evm.SignedTx{}, err
	}
	stx.Replayed = true
	return stx, nil
}

// oneStatementAllocator is a NonceAllocator that spares work for a use of
// one statement; NonceLanes is one.
type oneStatementAllocator interface {
	withNonceOneStatement(ctx context.Context, from common.Address, use func(tx *sql.Tx, nonce uint64) error) error
}

// signAndStore signs inner as attempt 0 of a step with the nonce the
// allocator hands out, and stores it in the allocator's transaction. The key
// is opened before the nonce is: nothing slow runs under the lane's lock.
func (s *Signer) signAndStore(ctx context.Context, workflowID, step string, from common.Address,
	inner *types.DynamicFeeTx) (evm.SignedTx, error) {
	var stored evm.SignedTx
	withNonce := s.nonces.WithNonce
	if a, ok := s.nonces.(oneStatementAllocator); ok {
		withNonce = a.withNonceOneStatement // use below writes with one statement
	}
	err := s.withKey(ctx, from, func(key *ecdsa.PrivateKey) error {
		return withNonce(ctx, from, func(tx *sql.Tx, nonce uint64) error {
			inner.ChainID, inner.Nonce = s.cfg.ChainID, nonce
			signed, err := types.SignNewTx(key, s.signer, inner)
			if err != nil {
				return fmt.Errorf("signing transfer from %s: %w", evm.Lower(from), err)
			}
			stored, err = s.store.Insert(ctx, tx, workflowID, step, 0, from, signed)
			return err
		})
	})
	if errors.Is(err, evm.ErrAttemptExists) {
		// A concurrent call for the same step won (the rollback returned
		// the nonce): use what it stored.
		return s.storedReplay(ctx, workflowID, step)
	}
	if err != nil {
		return evm.SignedTx{}, err
	}
	s.log.Info("signed transfer", "workflow_id", workflowID, "step", step, "tx_hash", stored.Hash.Hex(),
		"address", evm.Lower(from), "nonce", stored.Nonce)
	return stored, nil
}

// signNext signs and stores the next attempt of a step whose latest attempt
// is latest: the same nonce, recipient, value, data and gas, at
// FeeOracle.ReplacementFees, if the sender holds the ether for it. Two calls
// that read the same latest race for one (workflow_id, step, attempt) key:
// one stores it, the other returns it with Replayed=true.
func (s *Signer) signNext(ctx context.Context, latest evm.SignedTx) (evm.SignedTx, error) {
	var prev types.Transaction
	if err := prev.UnmarshalBinary(latest.Raw); err != nil {
		return evm.SignedTx{}, fmt.Errorf("decoding stored transaction %s: %w", latest.Hash.Hex(), err)
	}
	tip, feeCap, err := s.fees.ReplacementFees(ctx, &prev)
	if err != nil {
		return evm.SignedTx{}, fmt.Errorf("replacing %s/%s: %w", latest.WorkflowID, latest.Step, err)
	}
	need := new(big.Int).Add(gasCost(feeCap, prev.Gas()), prev.Value())
	if err := s.balances.RequireNative(ctx, latest.From, need, "the replacement"); err != nil {
		return evm.SignedTx{}, err
	}
	signed, err := s.sign(ctx, latest.From, &types.DynamicFeeTx{Nonce: prev.Nonce(), GasTipCap: tip, GasFeeCap: feeCap,
		Gas: prev.Gas(), To: prev.To(), Value: prev.Value(), Data: prev.Data(), AccessList: prev.AccessList()})
	if err != nil {
		return evm.SignedTx{}, err
	}
	next, err := s.store.Insert(ctx, nil, latest.WorkflowID, latest.Step, latest.Attempt+1, latest.From, signed)
	if errors.Is(err, evm.ErrAttemptExists) {
		return s.storedReplay(ctx, latest.WorkflowID, latest.Step)
	}
	if err != nil {
		return evm.SignedTx{}, fmt.Errorf("storing replacement of %s/%s: %w", latest.WorkflowID, latest.Step, err)
	}
	s.log.Info("signed replacement", "workflow_id", next.WorkflowID, "step", next.Step, "tx_hash", next.Hash.Hex(),
		"replaces", latest.Hash.Hex(), "address", evm.Lower(next.From), "nonce", next.Nonce, "attempt", next.Attempt,
		"tip_wei", tip.String(), "max_fee_wei", feeCap.String())
	return next, nil
}

// sign signs inner (its chain id set here) with from's key.
func (s *Signer) sign(ctx context.Context, from common.Address, inner *types.DynamicFeeTx) (*types.Transaction, error) {
	var signed *types.Transaction
	err := s.withKey(ctx, from, func(key *ecdsa.PrivateKey) (err error) {
		inner.ChainID = s.cfg.ChainID
		if signed, err = types.SignNewTx(key, s.signer, inner); err != nil {
			return fmt.Errorf("signing from %s: %w", evm.Lower(from), err)
		}
		return nil
	})
	return signed, err
}

// withKey opens from's key for use and zeroes it after.
func (s *Signer) withKey(ctx context.Context, from common.Address, use func(key *ecdsa.PrivateKey) error) error {
	key, err := s.keys.Key(ctx, s.cfg.Chain, evm.Lower(from))
	if err != nil {
		return fmt.Errorf("opening key of %s: %w", evm.Lower(from), err)
	}
	defer key.D.SetInt64(0)
	return use(key)
}
