package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/watch"
	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/workflows"
)

// Blocks a deposit is delivered from; fakeDeposit fails after "status=0"
// for notIncludedBlock and completes ("credited") otherwise.
var (
	notIncludedBlock = common.HexToHash("0xb1")
	creditedBlock    = common.HexToHash("0xb2")
	laterBlock       = common.HexToHash("0xb3")
)

// fakeDeposit stands in for workflows.Deposit on the test's task queue: it
// ends the way the real one does after status=0 (failed, DepositNotIncluded)
// or after its credit (completed), and answers the block it was started from.
func fakeDeposit(_ workflow.Context, in workflows.DepositInput) (protocol.TopupResponse, error) {
	if in.BlockHash == notIncludedBlock.Hex() {
		return protocol.TopupResponse{}, temporal.NewNonRetryableApplicationError("deposit reorganised away",
			workflows.ErrTypeDepositNotIncluded, nil)
	}
	return protocol.TopupResponse{Error: in.BlockHash}, nil
}

// TestDepositStarterRestartsOnlyNotIncluded drives HandleDeposits against
// the dev stack's real Temporal server and MariaDB. A deposit whose Deposit
// failed after status=0 is started afresh when the listener delivers it again
// from a new block (it was mined again); one whose Deposit completed
// (credited) is not, and neither is one the ledger credited whatever became
// of its workflow. (Before, the re-mined deposit started nothing.)
func TestDepositStarterRestartsOnlyNotIncluded(t *testing.T) {
	st := stacktest.Load(t)
	ctx := context.Background()
	db := stacktest.TestDB(t, "intake")
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Tokens = st.Tokens
	cfg.Temporal.TaskQueue = stacktest.RandomID("deposit-starter-test-")
	cfg.ResolveChains()
	tc := st.Temporal(t)
	w := worker.New(tc, cfg.Temporal.TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(fakeDeposit, workflow.RegisterOptions{Name: "Deposit"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	s, err := NewDepositStarter(cfg, "ETH", db, tc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := cfg.Tokens["USDT"]
	if !ok {
		t.Fatal("the stack has no USDT")
	}
	units, err := chain.ToUnits(decimal.NewFromInt(25), tok.Decimals)
	if err != nil {
		t.Fatal(err)
	}
	newDeposit := func() watch.Deposit {
		t.Helper()
		to := common.HexToAddress(stacktest.RandomAddress())
		if _, err := evm.Watch(ctx, db, cfg.ETH.Chain, "USDT", to, 1); err != nil { // announced: a topup watches it
			t.Fatal(err)
		}
		return watch.Deposit{Token: common.HexToAddress(tok.Address), From: common.HexToAddress(stacktest.RandomAddress()),
			To: to, Value: new(big.Int).Set(units),
			TxHash: common.BytesToHash([]byte(stacktest.RandomID("tx-"))), LogIndex: 1, BlockNumber: 100}
	}
	deliver := func(d watch.Deposit, block common.Hash) {
		t.Helper()
		d.BlockHash = block
		if err := s.HandleDeposits(ctx, []watch.Deposit{d}); err != nil {
			t.Fatal(err)
		}
	}
	// outcome waits for the latest run of id and returns its run id and the
	// block it was started from ("" if it failed).
	outcome := func(id string) (runID, block string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		run := tc.GetWorkflow(wctx, id, "")
		var res protocol.TopupResponse
		if err := run.Get(wctx, &res); err != nil {
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeDepositNotIncluded {
				t.Fatalf("%s: %v", id, err)
			}
		}
		d, err := tc.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		return d.WorkflowExecutionInfo.Execution.RunId, res.Error
	}

	d := newDeposit()
	id := workflows.DepositWorkflowID(cfg.ETH.Chain, d.TxHash.Hex(), d.LogIndex)
	deliver(d, notIncludedBlock)
	first, _ := outcome(id)
	deliver(d, creditedBlock) // mined again
	second, block := outcome(id)
	if second == first || block != creditedBlock.Hex() {
		t.Fatalf("after status=0 a re-mined deposit started run %s from %q; want a new run from %s (first run %s)",
			second, block, creditedBlock.Hex(), first)
	}
	deliver(d, laterBlock) // a completed (credited) deposit never starts again
	if third, block := outcome(id); third != second || block != creditedBlock.Hex() {
		t.Fatalf("a credited deposit started again: run %s from %q", third, block)
	}

	// Credited in the ledger, its workflow failed (say terminated after the
	// credit): delivered again, nothing starts.
	c := newDeposit()
	cid := workflows.DepositWorkflowID(cfg.ETH.Chain, c.TxHash.Hex(), c.LogIndex)
	deliver(c, notIncludedBlock)
	before, _ := outcome(cid)
	if _, err := ledger.New(db).Credit(ctx, ledger.CreditInput{Chain: cfg.ETH.Chain, Address: evm.Lower(c.To),
		Symbol: "USDT", Amount: decimal.NewFromInt(25), TxHash: c.TxHash.Hex(), LogIndex: c.LogIndex,
		Reference: cid}); err != nil {
		t.Fatal(err)
	}
	deliver(c, creditedBlock)
	if after, _ := outcome(cid); after != before {
		t.Fatalf("a deposit the ledger credited started run %s", after)
	}
}

// silentDeposit stands in for workflows.Deposit: it answers whether it was
// started silent, in the response's Error.
func silentDeposit(_ workflow.Context, in workflows.DepositInput) (protocol.TopupResponse, error) {
	return protocol.TopupResponse{Error: fmt.Sprint(in.Silent)}, nil
}

// TestDepositStarterBooksManagedWalletsSilently
// drives HandleDeposits against the dev stack's Temporal server and MariaDB:
// a deposit to an address a topup watches is announced, managed or not; one
// to a managed wallet no topup watches, a dust deposit to a managed wallet,
// and a sweep's gas top-up (native, from a gas wallet) are booked silently;
// dust to an address that is only watched, and a deposit to an address
// neither watched nor managed, start nothing.
func TestDepositStarterBooksManagedWalletsSilently(t *testing.T) {
	st := stacktest.Load(t)
	ctx := context.Background()
	db := stacktest.TestDB(t, "intake")
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Tokens = map[string]config.Token{}
	for sym, tok := range st.Tokens {
		tok.Dust = "1"
		cfg.Tokens[sym] = tok
	}
	cfg.Temporal.TaskQueue = stacktest.RandomID("deposit-silent-test-")
	cfg.ResolveChains()
	tc := st.Temporal(t)
	w := worker.New(tc, cfg.Temporal.TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(silentDeposit, workflow.RegisterOptions{Name: "Deposit"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	s, err := NewDepositStarter(cfg, "ETH", db, tc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := cfg.Tokens["USDT"]
	if !ok {
		t.Fatal("the stack has no USDT")
	}
	chainName := cfg.ETH.Chain
	wallet := func(kind string) common.Address {
		t.Helper()
		a := common.HexToAddress(stacktest.RandomAddress())
		if _, err := db.ExecContext(ctx, "INSERT INTO wallets (chain, address, kind, label) VALUES (?,?,?,?)",
			chainName, evm.Lower(a), kind, stacktest.RandomID(kind+"-")); err != nil {
			t.Fatal(err)
		}
		return a
	}
	watched := func(a common.Address) common.Address {
		t.Helper()
		if _, err := evm.Watch(ctx, db, chainName, "USDT", a, 1); err != nil {
			t.Fatal(err)
		}
		return a
	}
	gas := wallet("gas")
	hot := wallet("hot")
	managedWatched := watched(wallet("deposit"))
	onlyWatched := watched(common.HexToAddress(stacktest.RandomAddress()))
	stranger := common.HexToAddress(stacktest.RandomAddress())

	deposit := func(from, to common.Address, amount string, native bool) watch.Deposit {
		t.Helper()
		d := watch.Deposit{From: from, To: to, TxHash: common.BytesToHash([]byte(stacktest.RandomID("tx-"))),
			BlockNumber: 100, BlockHash: creditedBlock}
		if native {
			d.Native, d.LogIndex = true, chain.NativeLogIndex
			d.Value = decimal.RequireFromString(amount).Shift(18).BigInt()
		} else {
			d.Token, d.LogIndex = common.HexToAddress(tok.Address), 0
			d.Value = decimal.RequireFromString(amount).Shift(tok.Decimals).BigInt()
		}
		return d
	}
	outsider := common.HexToAddress(stacktest.RandomAddress())
	for _, tc2 := range []struct {
		name string
		d    watch.Deposit
		want string // "true": started silent, "false": announced, "": nothing started
	}{
		{"payment between managed wallets", deposit(hot, wallet("deposit"), "3.5", false), "true"},
		{"refill of the gas wallet", deposit(outsider, gas, "0.5", true), "true"},
		{"token no topup watches, to the hot wallet", deposit(outsider, hot, "2", false), "true"},
		{"deposit to a watched managed wallet", deposit(outsider, managedWatched, "25", false), "false"},
		{"deposit to a watched address", deposit(outsider, onlyWatched, "25", false), "false"},
		{"gas top-up of a watched deposit wallet", deposit(gas, managedWatched, "0.01", true), "true"},
		{"dust to a watched managed wallet", deposit(outsider, managedWatched, "0.5", false), "true"},
		{"dust to a watched address", deposit(outsider, onlyWatched, "0.5", false), ""},
		{"deposit to a stranger", deposit(outsider, stranger, "25", false), ""},
	} {
		t.Run(tc2.name, func(t *testing.T) {
			if err := s.HandleDeposits(ctx, []watch.Deposit{tc2.d}); err != nil {
				t.Fatal(err)
			}
			var recorded int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM deposits WHERE chain=? AND tx_hash=? AND log_index=?",
				chainName, tc2.d.TxHash.Hex(), tc2.d.LogIndex).Scan(&recorded); err != nil {
				t.Fatal(err)
			}
			id := workflows.DepositWorkflowID(chainName, tc2.d.TxHash.Hex(), tc2.d.LogIndex)
			if tc2.want == "" {
				if _, err := tc.DescribeWorkflowExecution(ctx, id, ""); err == nil {
					t.Fatalf("%s started", id)
				}
				if tc2.d.To == stranger && recorded != 0 {
					t.Errorf("a deposit to an address neither watched nor managed was recorded")
				}
				return
			}
			if recorded != 1 {
				t.Errorf("deposit recorded %d times, want once", recorded)
			}
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			var res protocol.TopupResponse
			if err := tc.GetWorkflow(wctx, id, "").Get(wctx, &res); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if res.Error != tc2.want {
				t.Errorf("started with Silent=%s, want %s", res.Error, tc2.want)
			}
		})
	}
}
