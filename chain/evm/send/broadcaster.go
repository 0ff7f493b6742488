// Package send is payflow's sending side of an EVM chain, one type per
// concern, wired together by NewBroadcaster: FeeOracle (fees and gas),
// NonceLanes (the NonceAllocator, group-committed per wallet), Signer (each
// step signed once and stored before anything is sent), Sender (send the
// stored bytes in JSON-RPC batches, replace, inspect what the chain proves)
// and Healer (nonce gaps). Balances and the signed_txs store are package
// evm's.
package send

import (
	"database/sql"
	"log/slog"
	"math/big"
	"time"

	"payflow/chain/evm"
)

// BroadcasterConfig configures the parts NewBroadcaster wires.
type BroadcasterConfig struct {
	Chain   string   // protocol chain name, e.g. "ETH"
	ChainID *big.Int // EIP-155 chain id
	// MaxFeeWei caps maxFeePerGas (FeeConfig.MaxFeeWei).
	MaxFeeWei *big.Int
	// MaxAttempts caps the signed attempts of one step (SenderConfig.MaxAttempts).
	MaxAttempts int
	// FeeCacheTTL and GasCacheTTL are FeeConfig's.
	FeeCacheTTL time.Duration
	GasCacheTTL time.Duration
}

// Broadcaster is payflow's sending side of one chain, one part per concern,
// wired over one database and node. It has no behaviour of its own: callers
// name the part they use (b.Signer.SignTransfer, b.Sender.Send, ...).
//
// A transfer's life through it: Signer signs it once per (workflow id, step)
// with a nonce Nonces hands out and stores it in Store before anything is sent;
// Sender sends the stored bytes (again as often as asked), replaces a stuck
// attempt and inspects what the chain proves; Healer unblocks wallets whose
// later transfers wait behind a nonce never sent. Fees prices, Balances
// refuses what a wallet cannot pay.
type Broadcaster struct {
	Fees     *FeeOracle
	Balances *evm.Balances
	Nonces   *NonceLanes
	Store    *evm.TxStore
	Signer   *Signer
	Sender   *Sender
	Healer   *Healer
}

// Close joins the group-commit writers of the nonce lanes and the sender:
// what was queued is committed, later calls are refused. Call it once every
// caller (activities, the healer) has returned, before the database and the
// node close.
func (b *Broadcaster) Close() {
	b.Sender.Close()
	b.Nonces.Close()
}

// NewBroadcaster wires a Broadcaster: group-committed NonceLanes as the nonce
// allocator, all parts sharing db, backend and cfg. ChainID and MaxFeeWei are required;
// MaxAttempts must not be negative. signer signs for the sending wallets
// (payflow-signer's client; nil: nothing can be signed, see NewSigner).
func NewBroadcaster(cfg BroadcasterConfig, db *sql.DB, backend evm.Backend, signer TxSigner, log *slog.Logger) (*Broadcaster, error) {
	var b Broadcaster
	var err error
	reads := evm.NewSharedReads(backend) // concurrent signers share their balance and fee reads
	if b.Fees, err = NewFeeOracle(FeeConfig{MaxFeeWei: cfg.MaxFeeWei, FeeCacheTTL: cfg.FeeCacheTTL,
		GasCacheTTL: cfg.GasCacheTTL}, reads); err != nil {
		return nil, err
	}
	if b.Balances, err = evm.NewBalances(reads); err != nil {
		return nil, err
	}
	if b.Nonces, err = NewNonceLanes(cfg.Chain, db, backend, log); err != nil {
		return nil, err
	}
	if b.Store, err = evm.NewTxStore(cfg.Chain, db); err != nil {
		return nil, err
	}
	if b.Signer, err = NewSigner(SignerConfig{Chain: cfg.Chain, ChainID: cfg.ChainID}, b.Store, b.Nonces, b.Fees,
		b.Balances, signer, log); err != nil {
		return nil, err
	}
	if b.Sender, err = NewSender(SenderConfig{MaxAttempts: cfg.MaxAttempts}, b.Store, b.Signer, backend, log); err != nil {
		return nil, err
	}
	if b.Healer, err = NewHealer(b.Nonces, b.Store, b.Fees, b.Signer, b.Sender, backend, log); err != nil {
		return nil, err
	}
	return &b, nil
}
