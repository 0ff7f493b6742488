package chain

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/go-sql-driver/mysql"
	"github.com/shopspring/decimal"
)

// KeySource opens a sending wallet's key for the moment of signing.
// ledger.Wallets satisfies it.
type KeySource interface {
	Key(ctx context.Context, chain, address string) (*ecdsa.PrivateKey, error)
}

// BroadcasterConfig configures a Broadcaster.
type BroadcasterConfig struct {
	Chain   string   // protocol chain name, e.g. "ETH"
	ChainID *big.Int // EIP-155 chain id
	// MaxFeeWei caps maxFeePerGas. A network fee above it fails with ErrFeeCapExceeded.
	MaxFeeWei *big.Int
	// MaxAttempts caps the signed attempts of one step, the original
	// included: Replace fails with ErrTooManyAttempts once a step has this
	// many. Zero means DefaultMaxAttempts.
	MaxAttempts int
	// FeeCacheTTL reuses the base fee and tip suggestion for this long
	// (about one block) instead of two RPCs per signature. Zero: no cache.
	FeeCacheTTL time.Duration
	// GasCacheTTL reuses a token's transfer gas estimate for this long (see
	// transferGas). Zero: estimate every transfer.
	GasCacheTTL time.Duration
}

// DefaultMaxAttempts is BroadcasterConfig.MaxAttempts when unset: the
// original and four replacements, each at least 12.5% dearer.
const DefaultMaxAttempts = 5

// Broadcaster signs transfers exactly once per (workflow id, step) and sends
// the stored bytes as often as asked. The nonce of each sending wallet comes
// from a row in the nonces table, locked in the same database transaction
// that stores the signed transaction: one writer per wallet, no gaps, no reuse.
type Broadcaster struct {
	cfg     BroadcasterConfig
	db      *sql.DB
	backend Backend
	keys    KeySource
	erc20   abi.ABI
	signer  types.Signer
	log     *slog.Logger

	cacheMu  sync.Mutex
	feesAt   time.Time
	feeBase  *big.Int
	feeTip   *big.Int
	gasByTok map[common.Address]cachedGas
}

type cachedGas struct {
	gas uint64
	at  time.Time
}

// NewBroadcaster wires a Broadcaster.
func NewBroadcaster(cfg BroadcasterConfig, db *sql.DB, backend Backend, keys KeySource, log *slog.Logger) (*Broadcaster, error) {
	if cfg.ChainID == nil || cfg.ChainID.Sign() <= 0 {
		return nil, errors.New("broadcaster: chain id is required")
	}
	if cfg.MaxFeeWei == nil || cfg.MaxFeeWei.Sign() <= 0 {
		return nil, errors.New("broadcaster: max fee is required")
	}
	if cfg.MaxAttempts < 0 {
		return nil, errors.New("broadcaster: max attempts must not be negative")
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	parsed, err := abi.JSON(strings.NewReader(erc20ABI))
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Broadcaster{cfg: cfg, db: db, backend: backend, keys: keys, erc20: parsed,
		signer: types.LatestSignerForChainID(cfg.ChainID), log: log}, nil
}

// erc20ABI is the part of ERC20 payflow calls. transfer is declared without a
// return value so USDT-style tokens (which return nothing) work; success is
// judged by the receipt status.
const erc20ABI = `[
 {"type":"function","name":"transfer","stateMutability":"nonpayable","inputs":[{"name":"to","type":"address"},{"name":"value","type":"uint256"}],"outputs":[]},
 {"type":"function","name":"balanceOf","stateMutability":"view","inputs":[{"name":"owner","type":"address"}],"outputs":[{"name":"","type":"uint256"}]},
 {"type":"event","name":"Transfer","anonymous":false,"inputs":[{"name":"from","type":"address","indexed":true},{"name":"to","type":"address","indexed":true},{"name":"value","type":"uint256","indexed":false}]}
]`

// TransferRequest is one token transfer to sign.
type TransferRequest struct {
	WorkflowID string
	Step       string // e.g. "transfer"; unique within the workflow
	From       common.Address
	To         common.Address
	Token      common.Address
	Units      *big.Int // token base units
}

// SignedTx is a stored signed transaction.
type SignedTx struct {
	WorkflowID string
	Step       string
	Attempt    int
	From       common.Address
	Nonce      uint64
	Hash       common.Hash
	Raw        []byte
	// Replayed is true when the transaction was already stored: nothing was signed.
	Replayed bool
	// Mined is true when Replace or Send found this attempt already in a
	// block: nothing was signed, and no other attempt of the step can mine.
	Mined bool
}

// TokenBalance returns owner's balance of token at the latest block.
func (b *Broadcaster) TokenBalance(ctx context.Context, token, owner common.Address, block *big.Int) (*big.Int, error) {
	data, err := b.erc20.Pack("balanceOf", owner)
	if err != nil {
		return nil, err
	}
	out, err := b.backend.CallContract(ctx, ethereum.CallMsg{To: &token, Data: data}, block)
	if err != nil {
		return nil, fmt.Errorf("calling balanceOf(%s): %w", Lower(owner), err)
	}
	if len(out) < 32 {
		return nil, fmt.Errorf("balanceOf(%s) returned %d bytes; is %s a token?", Lower(owner), len(out), Lower(token))
	}
	return new(big.Int).SetBytes(out[:32]), nil
}

// SignTransfer signs the transfer once and stores it before anything is sent.
// Called again for the same (WorkflowID, Step) it returns the stored
// transaction with Replayed=true and signs nothing: a retry, a crashed worker
// or a Temporal reset can never produce a second transfer.
func (b *Broadcaster) SignTransfer(ctx context.Context, req TransferRequest) (SignedTx, error) {
	if stx, err := b.Stored(ctx, req.WorkflowID, req.Step); err == nil {
		stx.Replayed = true
		return stx, nil
	} else if !errors.Is(err, ErrNotSigned) {
		return SignedTx{}, err
	}
	data, err := b.erc20.Pack("transfer", req.To, req.Units)
	if err != nil {
		return SignedTx{}, fmt.Errorf("packing transfer: %w", err)
	}
	bal, err := b.TokenBalance(ctx, req.Token, req.From, nil)
	if err != nil {
		return SignedTx{}, err
	}
	if bal.Cmp(req.Units) < 0 {
		return SignedTx{}, fmt.Errorf("%s holds %s units, needs %s: %w", Lower(req.From), bal, req.Units, ErrInsufficientToken)
	}
	gas, err := b.transferGas(ctx, req, data)
	if err != nil {
		return SignedTx{}, err
	}
	tip, maxFee, err := b.fees(ctx)
	if err != nil {
		return SignedTx{}, err
	}
	if err := b.requireNative(ctx, req.From, new(big.Int).Mul(maxFee, new(big.Int).SetUint64(gas)), "gas"); err != nil {
		return SignedTx{}, err
	}
	key, err := b.keys.Key(ctx, b.cfg.Chain, Lower(req.From))
	if err != nil {
		return SignedTx{}, fmt.Errorf("opening key of %s: %w", Lower(req.From), err)
	}
	defer key.D.SetInt64(0)

	return b.signAndStore(ctx, req, key, &types.DynamicFeeTx{
		ChainID: b.cfg.ChainID, GasTipCap: tip, GasFeeCap: maxFee, Gas: gas, To: &req.Token, Data: data,
	})
}

// requireNative fails with ErrInsufficientGas when from holds less native
// coin than need (what is the cost, for the message).
func (b *Broadcaster) requireNative(ctx context.Context, from common.Address, need *big.Int, what string) error {
	eth, err := b.NativeBalance(ctx, from, nil)
	if err != nil {
		return err
	}
	if eth.Cmp(need) < 0 {
		return fmt.Errorf("%s has %s wei, %s may cost up to %s: %w", Lower(from), eth, what, need, ErrInsufficientGas)
	}
	return nil
}

// fees returns EIP-1559 tip and max fee: 2×base fee + tip, within the cap.
func (b *Broadcaster) fees(ctx context.Context) (tip, maxFee *big.Int, err error) {
	base, tip, err := b.networkFees(ctx)
	if err != nil {
		return nil, nil, err
	}
	maxFee = new(big.Int).Add(new(big.Int).Mul(base, big.NewInt(2)), tip)
	if new(big.Int).Add(base, tip).Cmp(b.cfg.MaxFeeWei) > 0 {
		return nil, nil, fmt.Errorf("base fee %s + tip %s wei > cap %s: %w", base, tip, b.cfg.MaxFeeWei, ErrFeeCapExceeded)
	}
	if maxFee.Cmp(b.cfg.MaxFeeWei) > 0 {
		maxFee = new(big.Int).Set(b.cfg.MaxFeeWei)
	}
	return tip, maxFee, nil
}

// transferGas is the gas limit of a token transfer: the node's estimate with
// 20% headroom (state may change before inclusion). With GasCacheTTL set, the
// estimate is made once per token for that long, and made for the worst
// case of a standard token — a recipient that has never held it, whose
// balance slot goes from zero to non-zero — so it covers every transfer
// (a transfer it still cannot cover reverts on chain, and its payment is
// released and answered status=0).
func (b *Broadcaster) transferGas(ctx context.Context, req TransferRequest, data []byte) (uint64, error) {
	if b.cfg.GasCacheTTL <= 0 {
		est, err := b.backend.EstimateGas(ctx, ethereum.CallMsg{From: req.From, To: &req.Token, Data: data})
		if err != nil {
			return 0, fmt.Errorf("estimating gas of transfer from %s: %w", Lower(req.From), err)
		}
		return est * 12 / 10, nil
	}
	b.cacheMu.Lock()
	c, ok := b.gasByTok[req.Token]
	b.cacheMu.Unlock()
	if ok && time.Since(c.at) < b.cfg.GasCacheTTL {
		return c.gas, nil
	}
	var fresh common.Address
	if _, err := rand.Read(fresh[:]); err != nil {
		return 0, err
	}
	worst, err := b.erc20.Pack("transfer", fresh, req.Units)
	if err != nil {
		return 0, err
	}
	est, err := b.backend.EstimateGas(ctx, ethereum.CallMsg{From: req.From, To: &req.Token, Data: worst})
	if err != nil {
		return 0, fmt.Errorf("estimating gas of transfer from %s: %w", Lower(req.From), err)
	}
	gas := est * 12 / 10
	b.cacheMu.Lock()
	if b.gasByTok == nil {
		b.gasByTok = map[common.Address]cachedGas{}
	}
	b.gasByTok[req.Token] = cachedGas{gas: gas, at: time.Now()}
	b.cacheMu.Unlock()
	return gas, nil
}

// networkFees returns the latest block's base fee (zero before London) and
// the node's suggested tip, cached for FeeCacheTTL (about a block).
func (b *Broadcaster) networkFees(ctx context.Context) (base, tip *big.Int, err error) {
	if b.cfg.FeeCacheTTL > 0 {
		b.cacheMu.Lock()
		if b.feeBase != nil && time.Since(b.feesAt) < b.cfg.FeeCacheTTL {
			base, tip = new(big.Int).Set(b.feeBase), new(big.Int).Set(b.feeTip)
		}
		b.cacheMu.Unlock()
		if base != nil {
			return base, tip, nil
		}
	}
	defer func() {
		if err == nil && b.cfg.FeeCacheTTL > 0 {
			b.cacheMu.Lock()
			b.feesAt, b.feeBase, b.feeTip = time.Now(), new(big.Int).Set(base), new(big.Int).Set(tip)
			b.cacheMu.Unlock()
		}
	}()
	head, err := b.backend.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("reading latest header: %w", err)
	}
	tip, err = b.backend.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("suggesting tip: %w", err)
	}
	base = head.BaseFee
	if base == nil {
		base = big.NewInt(0)
	}
	return base, tip, nil
}

// signAndStore allocates the nonce and stores the signed transaction in one
// database transaction. The nonce row lock makes this the single writer of
// the wallet's nonce lane.
func (b *Broadcaster) signAndStore(ctx context.Context, req TransferRequest, key *ecdsa.PrivateKey, inner *types.DynamicFeeTx) (SignedTx, error) {
	from := Lower(req.From)
	if err := b.ensureLane(ctx, req.From); err != nil {
		return SignedTx{}, err
	}
	chainNext, err := b.backend.PendingNonceAt(ctx, req.From)
	if err != nil {
		return SignedTx{}, fmt.Errorf("reading pending nonce of %s: %w", from, err)
	}
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return SignedTx{}, fmt.Errorf("beginning nonce transaction: %w", err)
	}
	defer tx.Rollback()
	nonce, err := b.lockNonce(ctx, tx, req.From)
	if err != nil {
		return SignedTx{}, err
	}
	// Resync from the chain: a transaction sent from this wallet outside
	// payflow used nonces the lane does not know of. (The chain's pending
	// nonce can only lag the lane otherwise, so taking the larger is safe.)
	if chainNext > nonce {
		b.log.Warn("nonce lane behind the chain; resynced", "address", from, "lane", nonce, "chain", chainNext)
		nonce = chainNext
	}
	inner.Nonce = nonce
	signed, err := types.SignNewTx(key, b.signer, inner)
	if err != nil {
		return SignedTx{}, fmt.Errorf("signing transfer from %s: %w", from, err)
	}
	raw, err := signed.MarshalBinary()
	if err != nil {
		return SignedTx{}, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO signed_txs
		(workflow_id, step, attempt, chain, from_address, to_address, nonce, tx_hash, raw, max_fee_wei, tip_wei)
		VALUES (?,?,0,?,?,?,?,?,?,?,?)`,
		req.WorkflowID, req.Step, b.cfg.Chain, from, Lower(*inner.To), nonce, signed.Hash().Hex(), raw,
		decimal.NewFromBigInt(inner.GasFeeCap, 0), decimal.NewFromBigInt(inner.GasTipCap, 0)); isDuplicateKey(err) {
		// A concurrent attempt of the same step won (the rollback returns
		// the nonce): use what it stored.
		_ = tx.Rollback()
		s, err := b.Stored(ctx, req.WorkflowID, req.Step)
		if err == nil {
			s.Replayed = true
		}
		return s, err
	} else if err != nil {
		return SignedTx{}, fmt.Errorf("storing signed transfer: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE nonces SET next_nonce=? WHERE chain=? AND address=?",
		nonce+1, b.cfg.Chain, from); err != nil {
		return SignedTx{}, fmt.Errorf("advancing nonce: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return SignedTx{}, fmt.Errorf("committing signed transfer: %w", err)
	}
	b.log.Info("signed transfer", "workflow_id", req.WorkflowID, "step", req.Step, "tx_hash", signed.Hash().Hex(),
		"address", from, "nonce", nonce)
	return SignedTx{WorkflowID: req.WorkflowID, Step: req.Step, From: req.From, Nonce: nonce, Hash: signed.Hash(), Raw: raw}, nil
}

// ensureLane creates the wallet's nonce row from the chain's pending nonce the
// first time it sends. It runs before, and outside, the signing transaction:
// there a locking read of a missing row takes a gap lock, and two first
// signers inserting into the same gap deadlock each other.
func (b *Broadcaster) ensureLane(ctx context.Context, from common.Address) error {
	var one int
	err := b.db.QueryRowContext(ctx, "SELECT 1 FROM nonces WHERE chain=? AND address=?", b.cfg.Chain, Lower(from)).Scan(&one)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading nonce lane of %s: %w", Lower(from), err)
	}
	pending, err := b.backend.PendingNonceAt(ctx, from)
	if err != nil {
		return fmt.Errorf("reading pending nonce of %s: %w", Lower(from), err)
	}
	if _, err := b.db.ExecContext(ctx, "INSERT IGNORE INTO nonces (chain, address, next_nonce) VALUES (?,?,?)",
		b.cfg.Chain, Lower(from), pending); err != nil {
		return fmt.Errorf("creating nonce lane of %s: %w", Lower(from), err)
	}
	return nil
}

// lockNonce locks the wallet's nonce row, which ensureLane has created.
func (b *Broadcaster) lockNonce(ctx context.Context, tx *sql.Tx, from common.Address) (uint64, error) {
	var next uint64
	err := tx.QueryRowContext(ctx, "SELECT next_nonce FROM nonces WHERE chain=? AND address=? FOR UPDATE",
		b.cfg.Chain, Lower(from)).Scan(&next)
	if err != nil {
		return 0, fmt.Errorf("locking nonce lane of %s: %w", Lower(from), err)
	}
	return next, nil
}

// Stored returns the latest stored attempt of a step, or ErrNotSigned.
func (b *Broadcaster) Stored(ctx context.Context, workflowID, step string) (SignedTx, error) {
	s, err := scanSigned(b.db.QueryRowContext(ctx, `SELECT `+signedColumns+` FROM signed_txs
		WHERE workflow_id=? AND step=? ORDER BY attempt DESC LIMIT 1`, workflowID, step))
	if errors.Is(err, sql.ErrNoRows) {
		return SignedTx{}, fmt.Errorf("%s/%s: %w", workflowID, step, ErrNotSigned)
	}
	if err != nil {
		return SignedTx{}, fmt.Errorf("reading signed transfer %s/%s: %w", workflowID, step, err)
	}
	return s, nil
}

// signedColumns are the signed_txs columns scanSigned reads, in order.
const signedColumns = "workflow_id, step, attempt, from_address, nonce, tx_hash, raw"

func scanSigned(row interface{ Scan(...any) error }) (SignedTx, error) {
	var s SignedTx
	var from, hash string
	if err := row.Scan(&s.WorkflowID, &s.Step, &s.Attempt, &from, &s.Nonce, &hash, &s.Raw); err != nil {
		return SignedTx{}, err
	}
	s.From, s.Hash = common.HexToAddress(from), common.HexToHash(hash)
	return s, nil
}

// Send broadcasts the stored bytes of a step's latest attempt. Sending again
// is harmless: a node that already has the transaction, or has mined it,
// counts as success. When the node says the nonce is used and an attempt of
// the step is the one mined, Send returns that attempt with Mined=true; when
// none is, ErrNonceTooLow (wrapped): another transaction took the nonce, and
// the caller resolves it with Inspect (TransferDropped once that transaction
// is confirmations deep).
func (b *Broadcaster) Send(ctx context.Context, workflowID, step string) (SignedTx, error) {
	s, err := b.Stored(ctx, workflowID, step)
	if err != nil {
		return SignedTx{}, err
	}
	return b.send(ctx, s)
}

// send broadcasts s and marks it sent.
func (b *Broadcaster) send(ctx context.Context, s SignedTx) (SignedTx, error) {
	var tx types.Transaction
	if err := tx.UnmarshalBinary(s.Raw); err != nil {
		return SignedTx{}, fmt.Errorf("decoding stored transaction %s: %w", s.Hash.Hex(), err)
	}
	err := b.backend.SendTransaction(ctx, &tx)
	switch {
	case err == nil, isKnown(err):
	case isNonceTooLow(err):
		// Either one of the step's attempts was mined already (success) or
		// another transaction took the nonce: not a retry's business;
		// Inspect proves the drop.
		attempts, aerr := b.Attempts(ctx, s.WorkflowID, s.Step)
		if aerr != nil {
			return s, aerr
		}
		mined, ok, merr := b.minedAttempt(ctx, attempts)
		if merr != nil {
			return s, merr
		}
		if !ok {
			return s, fmt.Errorf("sending %s (nonce %d): %w", s.Hash.Hex(), s.Nonce, ErrNonceTooLow)
		}
		s = mined
	default:
		return s, fmt.Errorf("sending %s: %w", s.Hash.Hex(), err)
	}
	if _, err := b.db.ExecContext(ctx, "UPDATE signed_txs SET state='sent' WHERE tx_hash=? AND state='signed'", s.Hash.Hex()); err != nil {
		return s, fmt.Errorf("marking %s sent: %w", s.Hash.Hex(), err)
	}
	b.log.Info("broadcast transfer", "workflow_id", s.WorkflowID, "step", s.Step, "tx_hash", s.Hash.Hex(),
		"nonce", s.Nonce, "attempt", s.Attempt)
	return s, nil
}

func isKnown(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "already known") || strings.Contains(m, "known transaction")
}

func isUnderpriced(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "underpriced")
}

func isNonceTooLow(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "nonce too low")
}

func isDuplicateKey(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}

// Receipt returns the receipt of hash, or ethereum.NotFound.
func (b *Broadcaster) Receipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	r, err := b.backend.TransactionReceipt(ctx, hash)
	if err == nil && r == nil {
		return nil, ethereum.NotFound
	}
	return r, err
}
