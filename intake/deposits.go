package intake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"payflow/chain"
	"payflow/config"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/workflows"
)

// DepositStarter is the chain listener's sink: it records every matched
// deposit and starts one Deposit workflow per deposit above the dust limit.
// Starting is idempotent by workflow id: a redelivered deposit whose workflow
// is running, or completed (credited), starts nothing. A Deposit that failed
// (it answered status=0: reorganised away and not re-included in time) is
// started again when the listener delivers the deposit again, i.e. it was
// mined again, from its new block, which keys the new announcements. A
// deposit the ledger ever credited is never started again.
type DepositStarter struct {
	cfg      config.Config
	chain    string // the chain whose listener this is the sink of
	assets   config.ChainConfig
	db       *sql.DB
	ledger   *ledger.Ledger
	temporal client.Client
	log      *slog.Logger
}

// NewDepositStarter wires the DepositStarter of chainName's listener.
func NewDepositStarter(cfg config.Config, chainName string, db *sql.DB, c client.Client, log *slog.Logger) (*DepositStarter, error) {
	ch, ok := cfg.Chain(chainName)
	if !ok {
		return nil, fmt.Errorf("deposits: chain %q is not configured", chainName)
	}
	return &DepositStarter{cfg: cfg, chain: strings.ToUpper(chainName), assets: ch, db: db, ledger: ledger.New(db), temporal: c,
		log: log.With("chain", strings.ToUpper(chainName))}, nil
}

// fromGasWallet reports whether from is one of the chain's gas wallets.
func (s *DepositStarter) fromGasWallet(ctx context.Context, from common.Address) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM wallets WHERE chain=? AND address=? AND kind='gas'",
		s.chain, chain.Lower(from)).Scan(&n); err != nil {
		return false, fmt.Errorf("looking up wallet %s: %w", chain.Lower(from), err)
	}
	return n > 0, nil
}

// asset names what a deposit moved: the token whose contract emitted the
// log, or the native coin for a value transfer (no token address).
func (s *DepositStarter) asset(d chain.Deposit) (config.Asset, bool) {
	if d.Token == (common.Address{}) {
		return s.assets.Asset(s.assets.Native.Symbol)
	}
	sym, _, ok := s.assets.TokenByAddress(d.Token.Hex())
	if !ok {
		return config.Asset{}, false
	}
	return s.assets.Asset(sym)
}

// HandleDeposits implements chain.DepositSink.
func (s *DepositStarter) HandleDeposits(ctx context.Context, deps []chain.Deposit) error {
	for _, d := range deps {
		a, ok := s.asset(d)
		if !ok {
			continue
		}
		if a.Native {
			internal, err := s.fromGasWallet(ctx, d.From)
			if err != nil {
				return err
			}
			if internal {
				// A sweep's gas top-up: the sweep books it; no business
				// deposited anything.
				continue
			}
		}
		sym := a.Symbol
		amount := chain.FromUnits(d.Value, a.Decimals)
		dust := amount.LessThan(a.DustLimit()) || amount.Sign() == 0
		if _, err := s.db.ExecContext(ctx, `INSERT INTO deposits
			(chain, tx_hash, log_index, symbol, address, from_address, amount, block_number, block_hash, dust)
			VALUES (?,?,?,?,?,?,?,?,?,?) ON DUPLICATE KEY UPDATE block_number=VALUES(block_number), block_hash=VALUES(block_hash)`,
			s.chain, d.TxHash.Hex(), d.LogIndex, sym, chain.Lower(d.To), chain.Lower(d.From), amount,
			d.BlockNumber, d.BlockHash.Hex(), dust); err != nil {
			return fmt.Errorf("recording deposit %s/%d: %w", d.TxHash.Hex(), d.LogIndex, err)
		}
		if dust {
			s.log.Info("dust deposit recorded, not announced", "address", chain.Lower(d.To), "tx_hash", d.TxHash.Hex(),
				"amount", amount.String())
			continue
		}
		id := workflows.DepositWorkflowID(s.chain, d.TxHash.Hex(), d.LogIndex)
		// A credited deposit whose workflow did not complete (terminated by
		// an operator after the credit) must not be announced again.
		credited, err := s.ledger.Credited(ctx, s.chain, d.TxHash.Hex(), d.LogIndex)
		if err != nil {
			return err
		}
		if credited {
			s.log.Info("deposit delivered again after its credit; nothing to start", "workflow_id", id,
				"tx_hash", d.TxHash.Hex(), "block_number", d.BlockNumber)
			continue
		}
		// A running Deposit is signalled instead: one answering status=0 at
		// this moment must hear that the deposit is back.
		_, err = s.temporal.SignalWithStartWorkflow(ctx, id, workflows.SignalDepositDelivered,
			workflows.DepositDelivery{BlockHash: d.BlockHash.Hex(), BlockNumber: d.BlockNumber}, client.StartWorkflowOptions{
				ID:                  id,
				TaskQueue:           s.cfg.TaskQueue(s.chain),
				WorkflowTaskTimeout: workflows.TaskTimeout,
				// Failed only after status=0: a deposit mined again is announced
				// afresh. Completed means credited: never again.
				WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
				TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrFlow.ValueSet("deposit"),
					workflows.AttrAddress.ValueSet(chain.Lower(d.To)), workflows.AttrTxHash.ValueSet(d.TxHash.Hex()),
					workflows.AttrChain.ValueSet(s.chain)),
				StaticSummary: fmt.Sprintf("deposit %s %s to %s", amount.String(), sym, chain.Lower(d.To)),
			}, workflows.Deposit, workflows.DepositInput{Chain: s.chain, Symbol: sym, Token: a.Address,
				Address: chain.Lower(d.To), From: chain.Lower(d.From), TxHash: d.TxHash.Hex(), LogIndex: d.LogIndex,
				Units: d.Value.String(), Amount: protocol.NewAmount(amount), BlockNumber: d.BlockNumber,
				BlockHash: d.BlockHash.Hex(), ReincludeTimeout: s.cfg.Payment.ReincludeTimeout.Duration})
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if err != nil && !errors.As(err, &started) {
			return fmt.Errorf("starting %s: %w", id, err)
		}
		s.log.Info("deposit seen", "workflow_id", id, "address", chain.Lower(d.To), "tx_hash", d.TxHash.Hex(),
			"amount", amount.String(), "block_number", d.BlockNumber)
	}
	return nil
}
