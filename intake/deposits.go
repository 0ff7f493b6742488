package intake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/watch"
	"payflow/config"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/workflows"
)

// Seen is one deposit a chain's watcher found, in family-neutral terms:
// Units of an asset (Token: its contract; "" for the native coin) paid to
// To in transaction TxHash, at Position within it (an EVM log's index
// within its receipt, chain.NativeLogIndex for a native transfer; a Bitcoin
// output's index), mined in block BlockNumber/BlockHash. Addresses and
// hashes are in the family's canonical form; From is "" when the family has
// no one sender (a Bitcoin transaction).
type Seen struct {
	TxHash      string
	Position    uint
	Token       string
	From, To    string
	Units       *big.Int
	BlockNumber uint64
	BlockHash   string
}

// WatchChecker says whether a topup watches an address of the chain.
type WatchChecker interface {
	IsWatched(ctx context.Context, address string) (bool, error)
}

// DepositStarter is the chain watcher's sink: it records every matched
// deposit and starts one Deposit workflow per deposit to book.
// A deposit to an address a topup watches is announced (status=2, then 1 or
// 0) when it is above the dust limit. A deposit to a managed wallet that is
// not announced (no topup watches it, it is dust, or it is a sweep's gas
// top-up) is booked silently: its Deposit credits it once confirmed, under
// the same deposit key, and publishes nothing. A dust deposit to an address
// that is not managed is only recorded.
// Starting is idempotent by workflow id: a redelivered deposit whose workflow
// is running, or completed (credited), starts nothing. A Deposit that failed
// (it answered status=0: reorganised away and not re-included in time) is
// started again when the watcher delivers the deposit again, i.e. it was
// mined again, from its new block, which keys the new announcements. A
// deposit the ledger ever credited is never started again.
type DepositStarter struct {
	cfg      config.Config
	chain    string // the chain whose watcher this is the sink of
	assets   config.ChainConfig
	watched  WatchChecker
	ledger   *ledger.Ledger
	wallets  *ledger.Wallets
	deposits *ledger.Deposits
	temporal client.Client
	log      *slog.Logger
}

// evmWatches is an EVM chain's watched addresses (watched_addresses).
type evmWatches struct {
	db    *sql.DB
	chain string
}

func (w evmWatches) IsWatched(ctx context.Context, address string) (bool, error) {
	return evm.IsWatched(ctx, w.db, w.chain, common.HexToAddress(address))
}

// NewDepositStarter wires the DepositStarter of an EVM chain's listener.
func NewDepositStarter(cfg config.Config, chainName string, db *sql.DB, c client.Client, log *slog.Logger) (*DepositStarter, error) {
	if _, ok := cfg.Chain(chainName); !ok {
		return nil, fmt.Errorf("deposits: chain %q is not configured", chainName)
	}
	return NewChainDepositStarter(cfg, chainName, db, evmWatches{db: db, chain: strings.ToUpper(chainName)}, c, log)
}

// NewChainDepositStarter wires the DepositStarter of chainName, of any
// family, whose topups' watches watched knows.
func NewChainDepositStarter(cfg config.Config, chainName string, db *sql.DB, watched WatchChecker, c client.Client,
	log *slog.Logger) (*DepositStarter, error) {
	ch, ok := cfg.Assets(chainName)
	if !ok {
		return nil, fmt.Errorf("deposits: chain %q is not configured", chainName)
	}
	return &DepositStarter{cfg: cfg, chain: strings.ToUpper(chainName), assets: ch, watched: watched, ledger: ledger.New(db),
		wallets: ledger.NewWallets(db, nil), deposits: ledger.NewDeposits(db), temporal: c,
		log: log.With("chain", strings.ToUpper(chainName))}, nil
}

// recipient is what the starter knows of a deposit's parties.
type recipient struct {
	watched bool // a topup watches the recipient: its deposits are announced
	managed bool // the recipient is a managed wallet: its deposits are booked
	fromGas bool // the sender is one of the chain's gas wallets
}

// lookup reads what HandleSeen needs of d's recipient and sender.
func (s *DepositStarter) lookup(ctx context.Context, d Seen) (recipient, error) {
	var r recipient
	watched, err := s.watched.IsWatched(ctx, d.To)
	r.watched = watched
	if err != nil {
		return recipient{}, fmt.Errorf("looking up the parties of deposit %s/%d: %w", d.TxHash, d.Position, err)
	}
	parties := []string{d.To}
	if d.From != "" {
		parties = append(parties, d.From)
	}
	kinds, err := s.wallets.KindsOf(ctx, s.chain, parties)
	if err != nil {
		return recipient{}, fmt.Errorf("looking up the parties of deposit %s/%d: %w", d.TxHash, d.Position, err)
	}
	_, r.managed = kinds[d.To]
	r.fromGas = d.From != "" && kinds[d.From] == ledger.KindGas
	return r, nil
}

// asset names what a deposit moved: the token whose contract emitted the
// log, or the native coin for a value transfer (no token address).
func (s *DepositStarter) asset(d Seen) (config.Asset, bool) {
	if d.Token == "" {
		return s.assets.Asset(s.assets.Native.Symbol)
	}
	sym, _, ok := s.assets.TokenByAddress(d.Token)
	if !ok {
		return config.Asset{}, false
	}
	return s.assets.Asset(sym)
}

// HandleDeposits implements the EVM listener's sink (watch.DepositSink).
func (s *DepositStarter) HandleDeposits(ctx context.Context, deps []watch.Deposit) error {
	seen := make([]Seen, 0, len(deps))
	for _, d := range deps {
		var token string
		if d.Token != (common.Address{}) {
			token = evm.Lower(d.Token)
		}
		seen = append(seen, Seen{TxHash: d.TxHash.Hex(), Position: d.LogIndex, Token: token, From: evm.Lower(d.From),
			To: evm.Lower(d.To), Units: d.Value, BlockNumber: d.BlockNumber, BlockHash: d.BlockHash.Hex()})
	}
	return s.HandleSeen(ctx, seen)
}

// HandleSeen records each deposit and starts (or signals) its Deposit.
func (s *DepositStarter) HandleSeen(ctx context.Context, deps []Seen) error {
	for _, d := range deps {
		a, ok := s.asset(d)
		if !ok {
			continue
		}
		who, err := s.lookup(ctx, d)
		if err != nil {
			return err
		}
		if !who.watched && !who.managed {
			// Neither watched nor managed (any more): nothing is owed.
			s.log.Warn("deposit to an address neither watched nor managed; ignored", "address", d.To, "tx_hash", d.TxHash)
			continue
		}
		sym := a.Symbol
		amount := chain.FromUnits(d.Units, a.Decimals)
		dust := amount.LessThan(a.DustLimit()) || amount.Sign() == 0
		// A sweep's gas top-up is no business's deposit: booked (the sweep
		// books it too, under the same key), never announced.
		announce := who.watched && !dust && !(a.Native && who.fromGas)
		if err := s.deposits.Record(ctx, ledger.SeenDeposit{Chain: s.chain, TxHash: d.TxHash, LogIndex: d.Position,
			Symbol: sym, Address: d.To, From: d.From, Amount: amount,
			BlockNumber: d.BlockNumber, BlockHash: d.BlockHash, Dust: dust}); err != nil {
			return err
		}
		if dust {
			s.log.Info("dust deposit recorded, not announced", "address", d.To, "tx_hash", d.TxHash,
				"amount", amount.String(), "managed", who.managed)
		}
		if !announce && (!who.managed || amount.Sign() == 0) {
			continue // recorded only: no wallet of ours to book it to
		}
		id := workflows.DepositWorkflowID(s.chain, d.TxHash, d.Position)
		// A credited deposit whose workflow did not complete (terminated by
		// an operator after the credit) must not be announced again.
		credited, err := s.ledger.Credited(ctx, s.chain, d.TxHash, d.Position)
		if err != nil {
			return err
		}
		if credited {
			s.log.Info("deposit delivered again after its credit; nothing to start", "workflow_id", id,
				"tx_hash", d.TxHash, "block_number", d.BlockNumber)
			continue
		}
		// A running Deposit is signalled instead: one answering status=0 at
		// this moment must hear that the deposit is back.
		_, err = s.temporal.SignalWithStartWorkflow(ctx, id, workflows.SignalDepositDelivered,
			workflows.DepositDelivery{BlockHash: d.BlockHash, BlockNumber: d.BlockNumber}, client.StartWorkflowOptions{
				ID:                  id,
				TaskQueue:           s.cfg.TaskQueue(s.chain),
				WorkflowTaskTimeout: workflows.TaskTimeout,
				// Failed only after status=0: a deposit mined again is announced
				// afresh. Completed means credited: never again.
				WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
				TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrFlow.ValueSet("deposit"),
					workflows.AttrAddress.ValueSet(d.To), workflows.AttrTxHash.ValueSet(d.TxHash),
					workflows.AttrChain.ValueSet(s.chain)),
				StaticSummary: summary(announce, amount.String(), sym, d.To),
			}, workflows.Deposit, workflows.DepositInput{Chain: s.chain, Symbol: sym, Token: a.Address,
				Address: d.To, From: d.From, TxHash: d.TxHash, LogIndex: d.Position,
				Units: d.Units.String(), Amount: protocol.NewAmount(amount), BlockNumber: d.BlockNumber,
				BlockHash: d.BlockHash, ReincludeTimeout: s.cfg.Payment.ReincludeTimeout.Duration, Silent: !announce})
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if err != nil && !errors.As(err, &started) {
			return fmt.Errorf("starting %s: %w", id, err)
		}
		s.log.Info("deposit seen", "workflow_id", id, "address", d.To, "tx_hash", d.TxHash,
			"amount", amount.String(), "block_number", d.BlockNumber, "announced", announce)
	}
	return nil
}

// summary is the Web UI's line for a Deposit: an announced deposit, or a
// transfer into a managed wallet booked without announcement.
func summary(announce bool, amount, symbol, to string) string {
	if announce {
		return fmt.Sprintf("deposit %s %s to %s", amount, symbol, to)
	}
	return fmt.Sprintf("booking %s %s to managed wallet %s (not announced)", amount, symbol, to)
}
