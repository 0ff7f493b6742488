package intake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

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
	db       *sql.DB
	ledger   *ledger.Ledger
	temporal client.Client
	log      *slog.Logger
}

// NewDepositStarter wires a DepositStarter.
func NewDepositStarter(cfg config.Config, db *sql.DB, c client.Client, log *slog.Logger) *DepositStarter {
	return &DepositStarter{cfg: cfg, db: db, ledger: ledger.New(db), temporal: c, log: log}
}

// HandleDeposits implements chain.DepositSink.
func (s *DepositStarter) HandleDeposits(ctx context.Context, deps []chain.Deposit) error {
	for _, d := range deps {
		sym, tok, ok := s.cfg.TokenByAddress(d.Token.Hex())
		if !ok {
			continue
		}
		amount := chain.FromUnits(d.Value, tok.Decimals)
		dust := amount.LessThan(tok.DustLimit()) || amount.Sign() == 0
		if _, err := s.db.ExecContext(ctx, `INSERT INTO deposits
			(chain, tx_hash, log_index, symbol, address, from_address, amount, block_number, block_hash, dust)
			VALUES (?,?,?,?,?,?,?,?,?,?) ON DUPLICATE KEY UPDATE block_number=VALUES(block_number), block_hash=VALUES(block_hash)`,
			s.cfg.ETH.Chain, d.TxHash.Hex(), d.LogIndex, sym, chain.Lower(d.To), chain.Lower(d.From), amount,
			d.BlockNumber, d.BlockHash.Hex(), dust); err != nil {
			return fmt.Errorf("recording deposit %s/%d: %w", d.TxHash.Hex(), d.LogIndex, err)
		}
		if dust {
			s.log.Info("dust deposit recorded, not announced", "address", chain.Lower(d.To), "tx_hash", d.TxHash.Hex(),
				"amount", amount.String())
			continue
		}
		id := workflows.DepositWorkflowID(s.cfg.ETH.Chain, d.TxHash.Hex(), d.LogIndex)
		// A credited deposit whose workflow did not complete (terminated by
		// an operator after the credit) must not be announced again.
		credited, err := s.ledger.Credited(ctx, s.cfg.ETH.Chain, d.TxHash.Hex(), d.LogIndex)
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
				ID:        id,
				TaskQueue: s.cfg.Temporal.TaskQueue,
				// Failed only after status=0: a deposit mined again is announced
				// afresh. Completed means credited: never again.
				WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
				TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrFlow.ValueSet("deposit"),
					workflows.AttrAddress.ValueSet(chain.Lower(d.To)), workflows.AttrTxHash.ValueSet(d.TxHash.Hex())),
				StaticSummary: fmt.Sprintf("deposit %s %s to %s", amount.String(), sym, chain.Lower(d.To)),
			}, workflows.Deposit, workflows.DepositInput{Chain: s.cfg.ETH.Chain, Symbol: sym, Token: chain.Lower(d.Token),
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
