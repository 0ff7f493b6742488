package main

// `payflowctl payment …`: the operator's view of and hands on withdraw and
// pay payments. It reads Temporal, the ledger and
// the chain, and acts only through what the workflows use: the approval
// signal, and for release the very activities (InspectTransfer, DecidePayment,
// PublishResult) a payment runs to release its reservation and answer.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"

	"payflow/activities"
	"payflow/answers"
	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/family"
	"payflow/chain/evm/send"
	"payflow/config"
	"payflow/internal/app"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/rmq"
	"payflow/workflows"
)

const paymentUsage = `usage: payflowctl payment <command> [flags]

  show <queue_id> [--flow withdraw|pay]   step, transfer attempts and their chain state, reservation, answer
  list [--status S] [--execution E] [--limit N]
                                           payments by PayflowStatus (received, awaiting-approval,
                                           confirming, stuck, succeeded, failed) and workflow state
                                           (running, completed, failed, canceled, terminated, timed-out);
                                           --status failing: steps failing on a retried error
  approve <queue_id> --reason TEXT [--as NAME]
  reject <queue_id> --reason TEXT [--as NAME]
                                           decide a payment that waits for approval
  release <queue_id> --reason TEXT [--as NAME] [--dry-run]
                                           for a terminated or abandoned payment: once the chain
                                           proves its transfer can never be mined (or nothing was
                                           signed), release the reservation and answer status=0;
                                           an answer recorded but never published is published

Flags for every command: --json (output for scripts), --config PATH (default $PAYFLOW_CONFIG,
else .dev/config.json of the dev stack), --env-file PATH (KEY='value' lines, e.g. .dev/payflow.env;
variables already set win). The configuration is the worker's: the same file and environment.
Approve, reject and release are recorded in the operator audit trail (payflowctl audit list) with
--as (default: the OS user; --by is another name for it) and --reason, which they require.
Exit status: 0 done, 1 error, 2 usage, 3 refused (the reason is printed).
`

// releaseSettleTime: a payment with nothing signed is released only this long
// after its workflow closed. A worker may still be running the last local
// activity of a terminated workflow (up to its 30 s start-to-close timeout):
// a reservation or a signature made then must not race the release.
const releaseSettleTime = time.Minute

// refusal is a command that declined to act, with the reason in a sentence.
// main exits with status 3 for it.
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }

func refuse(format string, args ...any) error { return &refusal{reason: fmt.Sprintf(format, args...)} }

// paymentFlags are the flags every payment command takes, plus its own.
type paymentFlags struct {
	fs      *flag.FlagSet
	json    bool
	config  string
	envFile string
	flow    string
	status  string
	exec    string
	limit   int
	actor   actorFlags
	dryRun  bool
}

func cmdPayment(ctx context.Context, args []string) error {
	if len(args) < 1 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, paymentUsage)
		os.Exit(2)
	}
	sub, args := args[0], args[1:]
	f := &paymentFlags{fs: flag.NewFlagSet("payment "+sub, flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.BoolVar(&f.json, "json", false, "JSON output")
	f.fs.StringVar(&f.config, "config", os.Getenv(config.EnvConfigPath), "config.json path")
	f.fs.StringVar(&f.envFile, "env-file", "", "file of KEY='value' environment lines")
	f.fs.StringVar(&f.flow, "flow", "", "withdraw or pay (default: whichever exists)")
	switch sub {
	case "list":
		f.fs.StringVar(&f.status, "status", "", "PayflowStatus value, or failing: a step failing on a retried error")
		f.fs.StringVar(&f.exec, "execution", "", "workflow state")
		f.fs.IntVar(&f.limit, "limit", 100, "at most this many payments")
	case "approve", "reject":
		f.actor.register(f.fs)
	case "release":
		f.actor.register(f.fs)
		f.fs.BoolVar(&f.dryRun, "dry-run", false, "check only; release nothing")
	case "show":
	default:
		fmt.Fprint(os.Stderr, paymentUsage)
		os.Exit(2)
	}
	pos, err := parseInterspersed(f.fs, args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "payflowctl payment %s: %v\n\n%s", sub, err, paymentUsage)
		os.Exit(2)
	}
	want := 1
	if sub == "list" {
		want = 0
	}
	if len(pos) != want {
		fmt.Fprintf(os.Stderr, "payflowctl payment %s takes %d argument(s), got %d\n\n%s", sub, want, len(pos), paymentUsage)
		os.Exit(2)
	}
	if f.flow != "" && f.flow != string(protocol.FlowWithdraw) && f.flow != string(protocol.FlowPay) {
		return fmt.Errorf("--flow must be withdraw or pay, not %q", f.flow)
	}
	acts := sub == "approve" || sub == "reject" || (sub == "release" && !f.dryRun)
	if acts {
		if err := f.actor.check("payment " + sub); err != nil {
			return printRefusal(err, f.json)
		}
	}

	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 5*time.Minute)
	defer cancelT()
	env, err := openPaymentEnv(ctx, f.config, f.envFile)
	if err != nil {
		return err
	}
	defer env.close()

	var out any
	switch sub {
	case "show":
		out, err = env.show(ctx, pos[0], f.flow)
	case "list":
		out, err = env.list(ctx, f.status, f.exec, f.limit)
	case "approve", "reject":
		var m *messageView
		m, err = env.decideApproval(ctx, pos[0], f.flow, workflows.Approval{Approve: sub == "approve", By: f.actor.as,
			Reason: f.actor.reason})
		out = m
		err = f.actor.record(ctx, env.db, paymentRecord(sub, pos[0], f.flow, m), err)
	case "release":
		var m *messageView
		m, err = env.release(ctx, pos[0], f.flow, f.dryRun)
		out = m
		if acts {
			err = f.actor.record(ctx, env.db, paymentRecord(sub, pos[0], f.flow, m), err)
		}
	}
	if err != nil {
		out = nil // a typed nil pointer is not nothing to print
	}
	var r *refusal
	if f.json && errors.As(err, &r) {
		return printRefusal(err, true)
	}
	if out != nil {
		if perr := printOut(out, f.json); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// printRefusal prints a refusal as JSON for --json (the reason goes to
// stderr in any case, from main) and returns it.
func printRefusal(err error, asJSON bool) error {
	var r *refusal
	if asJSON && errors.As(err, &r) {
		_ = printOut(struct {
			Refused bool   `json:"refused"`
			Reason  string `json:"reason"`
		}{true, r.reason}, true)
	}
	return err
}

// parseInterspersed parses flags wherever they appear among the positional
// arguments; everything after "--" is positional (a queue_id may start with
// a dash).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "an operator"
}

// texter is output with a human-readable form; the rest is printed as JSON.
type texter interface{ text(w io.Writer) }

func printOut(v any, asJSON bool) error {
	if t, ok := v.(texter); ok && !asJSON {
		t.text(os.Stdout)
		return nil
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// paymentEnv holds what the payment commands use: the worker's configuration
// and clients, and an activities.Activities wired like the worker's.
type paymentEnv struct {
	cfg     config.Config
	log     *slog.Logger
	tc      client.Client
	db      *sql.DB
	pub     *rmq.Publisher
	ledg    *ledger.Ledger
	wallets *ledger.Wallets
	chains  map[string]*chainEnv // opened on first use (on)
}

// chainEnv is one chain's node and activities, wired as the worker wires them.
type chainEnv struct {
	eth *ethclient.Client
	act *activities.Activities
}

// on returns the node and activities of chainName, dialling it on first use.
func (e *paymentEnv) on(ctx context.Context, chainName string) (*chainEnv, error) {
	name := strings.ToUpper(chainName)
	if c, ok := e.chains[name]; ok {
		return c, nil
	}
	ch, ok := e.cfg.Chain(name)
	if !ok {
		return nil, fmt.Errorf("chain %q is not in the configuration (chains: %v)", chainName, e.cfg.ChainNames())
	}
	eth, err := ethclient.DialContext(ctx, ch.RPCURL)
	if err != nil {
		return nil, fmt.Errorf("dialing the %s node: %w", name, err)
	}
	// No signer: payflowctl's payment commands inspect, decide and publish;
	// they never sign.
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: name, ChainID: big.NewInt(ch.ChainID),
		MaxFeeWei: ch.MaxFeeWei()}, e.db, eth, nil, e.log)
	if err != nil {
		eth.Close()
		return nil, err
	}
	fam, err := family.New(name, e.db, eth, bc)
	if err != nil {
		eth.Close()
		return nil, err
	}
	c := &chainEnv{eth: eth, act: &activities.Activities{
		Chain: name, Assets: ch, Collection: ch.CollectionAddress, Confirmations: uint64(ch.ConfirmHeight),
		Responses: workflows.ResponseQueues(e.cfg.RMQ),
		DB:        e.db, Transfers: fam.Transfers, Fees: fam.Fees, Balances: fam.Balances, Reads: fam.Reads,
		Ledger: e.ledg, Wallets: e.wallets, Publisher: e.pub,
	}}
	e.chains[name] = c
	return c, nil
}

// anyChain is for what touches no chain (publishing a recorded answer).
func (e *paymentEnv) anyChain(ctx context.Context) (*chainEnv, error) {
	return e.on(ctx, e.cfg.ChainNames()[0])
}

// loadCLIConfig loads the worker's configuration: the file at path (or
// $PAYFLOW_CONFIG) with the environment's overrides. With neither, it uses
// the dev stack's .dev/config.json and .dev/payflow.env (as scripts/stack.sh
// starts the worker), found from the working directory up.
func loadCLIConfig(path, envFile string) (config.Config, error) {
	if path == "" {
		if dev, ok := findDevDir(); ok {
			path = filepath.Join(dev, "config.json")
			if envFile == "" {
				envFile = filepath.Join(dev, "payflow.env")
			}
		}
	}
	if envFile != "" {
		if err := applyEnvFile(envFile); err != nil {
			return config.Config{}, err
		}
	}
	if path == "" {
		return config.Config{}, fmt.Errorf("no configuration: pass --config or set %s (or run from the repository with the dev stack up)",
			config.EnvConfigPath)
	}
	return config.Load(path)
}

func findDevDir() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		d := filepath.Join(dir, ".dev")
		if _, err := os.Stat(filepath.Join(d, "config.json")); err == nil {
			return d, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// applyEnvFile sets the KEY='value' lines of path that the environment does
// not set already. Values are never printed.
func applyEnvFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading env file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
	return sc.Err()
}

func openPaymentEnv(ctx context.Context, path, envFile string) (*paymentEnv, error) {
	cfg, err := loadCLIConfig(path, envFile)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("service", "payflowctl")
	e := &paymentEnv{cfg: cfg, log: log}
	if e.db, err = app.OpenDB(ctx, cfg); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts, err := app.TemporalOptions(cfg.Temporal)
	if err != nil {
		e.close()
		return nil, err
	}
	opts.Logger = tlog.NewStructuredLogger(log)
	// The identity Temporal records with every signal payflowctl sends.
	host, _ := os.Hostname()
	opts.Identity = fmt.Sprintf("payflowctl %s@%s", currentUser(), host)
	if e.tc, err = client.DialContext(dctx, opts); err != nil {
		e.close()
		return nil, fmt.Errorf("dialing Temporal at %s: %w", cfg.Temporal.Address, err)
	}
	// Wired as workers/main.go wires the worker's (on). The wallets carry no
	// key sealer: nothing here signs.
	e.wallets = ledger.NewWallets(e.db, nil)
	e.pub = rmq.NewPublisher(cfg.RMQ.SubAddr.Reveal(), cfg.RMQ, log) // connects on first publish
	e.ledg = ledger.New(e.db)
	e.chains = map[string]*chainEnv{}
	return e, nil
}

func (e *paymentEnv) close() {
	if e.pub != nil {
		_ = e.pub.Close()
	}
	if e.tc != nil {
		e.tc.Close()
	}
	for _, c := range e.chains {
		c.eth.Close()
	}
	if e.db != nil {
		_ = e.db.Close()
	}
}

// payment names one payment.
type payment struct {
	QueueID    string        `json:"queue_id"`
	Flow       protocol.Flow `json:"flow"`
	WorkflowID string        `json:"workflow_id"`
}

// workflowIDOf is the workflow id of a withdraw or pay queue_id (the
// caller has checked the flow).
func workflowIDOf(flow protocol.Flow, queueID string) string {
	spec, _ := workflows.FlowOf(flow)
	return spec.WorkflowID(queueID)
}

// resolve finds the payment of queueID: the given flow, or whichever of
// withdraw and pay Temporal or the ledger knows (both: the caller must say).
func (e *paymentEnv) resolve(ctx context.Context, queueID, flow string) (payment, error) {
	if flow != "" {
		f := protocol.Flow(flow)
		return payment{QueueID: queueID, Flow: f, WorkflowID: workflowIDOf(f, queueID)}, nil
	}
	var found []payment
	for _, f := range []protocol.Flow{protocol.FlowWithdraw, protocol.FlowPay} {
		p := payment{QueueID: queueID, Flow: f, WorkflowID: workflowIDOf(f, queueID)}
		ok, err := e.exists(ctx, p.WorkflowID)
		if err != nil {
			return payment{}, err
		}
		if ok {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return payment{}, fmt.Errorf("no withdraw or pay has queue_id %q", queueID)
	case 2:
		return payment{}, fmt.Errorf("both a withdraw and a pay have queue_id %q: say --flow withdraw or --flow pay", queueID)
	}
	return found[0], nil
}

// exists reports whether Temporal or the ledger knows workflow wfID.
func (e *paymentEnv) exists(ctx context.Context, wfID string) (bool, error) {
	_, err := e.tc.DescribeWorkflowExecution(ctx, wfID, "")
	var nf *serviceerror.NotFound
	switch {
	case err == nil:
		return true, nil
	case !errors.As(err, &nf):
		return false, fmt.Errorf("asking Temporal about %s: %w", wfID, err)
	}
	// A payment's reservation is held under its workflow id.
	switch _, err := e.ledg.GetReservation(ctx, wfID); {
	case err == nil:
		return true, nil
	case !errors.Is(err, ledger.ErrReservationNotFound):
		return false, fmt.Errorf("looking up %s in the ledger: %w", wfID, err)
	}
	signed, err := evm.SignedOf(ctx, e.db, wfID)
	if err != nil || len(signed) > 0 {
		return len(signed) > 0, err
	}
	_, answered, err := answers.New(e.db, nil, nil).Get(ctx, workflows.AnswerID(wfID))
	if err != nil {
		return false, fmt.Errorf("looking up %s in the outbox: %w", wfID, err)
	}
	return answered, nil
}

// workflowView is what Temporal says of a payment's workflow.
type workflowView struct {
	RunID     string     `json:"run_id"`
	Status    string     `json:"status"` // Running, Completed, Terminated, …
	Running   bool       `json:"running"`
	StartTime time.Time  `json:"start_time"`
	CloseTime *time.Time `json:"close_time,omitempty"`
	// PayflowStatus is the last step the workflow published.
	PayflowStatus string `json:"payflow_status,omitempty"`
	// Step is the live status query (running workflows only).
	Step *workflows.PaymentStatus `json:"step,omitempty"`
}

func (e *paymentEnv) describe(ctx context.Context, wfID string) (*workflowView, error) {
	d, err := e.tc.DescribeWorkflowExecution(ctx, wfID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("asking Temporal about %s: %w", wfID, err)
	}
	info := d.GetWorkflowExecutionInfo()
	v := &workflowView{RunID: info.GetExecution().GetRunId(), Status: info.GetStatus().String(),
		Running: info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, StartTime: info.GetStartTime().AsTime().UTC(),
		PayflowStatus: keyword(info.GetSearchAttributes().GetIndexedFields(), workflows.AttrStatus.GetName())}
	if info.GetCloseTime() != nil && !v.Running {
		t := info.GetCloseTime().AsTime().UTC()
		v.CloseTime = &t
	}
	return v, nil
}

// listFailing lists the running payments whose step keeps failing on a
// retried error, with "failing" as their status.
func (e *paymentEnv) listFailing(ctx context.Context, limit int) (listView, error) {
	ids, err := activities.FailingNow(ctx, e.db, limit)
	if err != nil {
		return nil, err
	}
	out := listView{}
	for _, id := range ids {
		d, err := e.tc.DescribeWorkflowExecution(ctx, id, "")
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("asking Temporal about %s: %w", id, err)
		}
		info := d.GetWorkflowExecutionInfo()
		sa := info.GetSearchAttributes().GetIndexedFields()
		flow := keyword(sa, workflows.AttrFlow.GetName())
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING ||
			(flow != string(protocol.FlowWithdraw) && flow != string(protocol.FlowPay)) {
			continue
		}
		out = append(out, listRow{QueueID: keyword(sa, workflows.AttrQueueID.GetName()), Flow: flow, WorkflowID: id,
			Status: statusFailing, Workflow: info.GetStatus().String(), Address: keyword(sa, workflows.AttrAddress.GetName()),
			TxHash: keyword(sa, workflows.AttrTxHash.GetName()), StartTime: info.GetStartTime().AsTime().UTC()})
	}
	return out, nil
}

// queryStep asks a running payment for its step in words.
func (e *paymentEnv) queryStep(ctx context.Context, wfID string) (*workflows.PaymentStatus, error) {
	qctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := e.tc.QueryWorkflow(qctx, wfID, "", workflows.QueryStatus)
	if err != nil {
		return nil, err
	}
	var s workflows.PaymentStatus
	if err := v.Get(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// request reads the payment's request from the start of its workflow's
// history; nil when Temporal no longer has it.
func (e *paymentEnv) request(ctx context.Context, wfID string) (*protocol.PaymentRequest, error) {
	it := e.tc.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return nil, nil
	}
	ev, err := it.Next()
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the history of %s: %w", wfID, err)
	}
	started := ev.GetWorkflowExecutionStartedEventAttributes()
	if started == nil {
		return nil, fmt.Errorf("the history of %s does not start with its start event", wfID)
	}
	var in workflows.PaymentInput
	if err := converter.GetDefaultDataConverter().FromPayloads(started.GetInput(), &in); err != nil {
		return nil, fmt.Errorf("decoding the input of %s: %w", wfID, err)
	}
	in.Request.Sign = ""
	return &in.Request, nil
}

// reservationView is the payment's reservation in the ledger.
type reservationView struct {
	State   string `json:"state"` // held, settled, released
	Amount  string `json:"amount"`
	Symbol  string `json:"symbol"`
	Address string `json:"address"`
}

func (e *paymentEnv) reservation(ctx context.Context, wfID string) (*reservationView, error) {
	r, err := e.ledg.GetReservation(ctx, wfID)
	if errors.Is(err, ledger.ErrReservationNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the reservation of %s: %w", wfID, err)
	}
	return &reservationView{State: r.State, Amount: r.Amount.String(), Symbol: r.Symbol, Address: r.Address}, nil
}

// attemptView is one signed transaction of a transfer and what the chain
// says of it.
type attemptView struct {
	Step        string `json:"step"`
	Attempt     int    `json:"attempt"`
	TxHash      string `json:"tx_hash"`
	Nonce       uint64 `json:"nonce"`
	From        string `json:"from"`
	SignedAt    string `json:"signed_at"`
	MaxFeeWei   string `json:"max_fee_wei"`
	TipWei      string `json:"tip_wei"`
	ChainState  string `json:"chain_state"` // mined, pending, replaced, dropped, unknown
	BlockNumber uint64 `json:"block_number,omitempty"`
	Succeeded   *bool  `json:"succeeded,omitempty"`
	Detail      string `json:"detail"`
}

// transferView is the chain's verdict on one transfer (all its attempts),
// as the workflow's InspectTransfer sees it.
type transferView struct {
	Chain       string        `json:"chain"`
	Step        string        `json:"step"`
	State       string        `json:"state"` // pending, mined, dropped
	TxHash      string        `json:"tx_hash"`
	BlockNumber uint64        `json:"block_number,omitempty"`
	Confirmed   bool          `json:"confirmed"`
	Paid        bool          `json:"paid"`
	Reason      string        `json:"reason,omitempty"`
	Attempts    []attemptView `json:"attempts"`
}

// transfers reads every attempt stored for wfID and asks the chain about each.
func (e *paymentEnv) transfers(ctx context.Context, wfID string) ([]transferView, error) {
	signed, err := evm.SignedOf(ctx, e.db, wfID)
	if err != nil {
		return nil, err
	}
	var out []transferView
	for _, r := range signed {
		a := attemptView{Step: r.Step, Attempt: r.Attempt, From: r.From, Nonce: r.Nonce, TxHash: r.TxHash,
			MaxFeeWei: r.MaxFeeWei, TipWei: r.TipWei, SignedAt: r.SignedAt}
		if n := len(out); n == 0 || out[n-1].Step != a.Step {
			out = append(out, transferView{Chain: r.Chain, Step: a.Step})
		}
		out[len(out)-1].Attempts = append(out[len(out)-1].Attempts, a)
	}
	for i := range out {
		if err := e.inspect(ctx, wfID, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// inspect fills t with the chain's verdict (InspectTransfer, as the workflow
// asks it) and each attempt's own state.
func (e *paymentEnv) inspect(ctx context.Context, wfID string, t *transferView) error {
	c, err := e.on(ctx, t.Chain)
	if err != nil {
		return err
	}
	insp, err := c.act.InspectTransfer(ctx, activities.InspectInput{WorkflowID: wfID, Step: t.Step})
	if err != nil {
		return fmt.Errorf("asking the chain about %s/%s: %w", wfID, t.Step, err)
	}
	t.State, t.TxHash, t.BlockNumber = insp.State, insp.TxHash, insp.BlockNumber
	t.Confirmed, t.Paid, t.Reason = insp.Confirmed, insp.Paid, insp.Reason
	head, err := c.eth.BlockNumber(ctx)
	if err != nil {
		return fmt.Errorf("reading the head: %w", err)
	}
	from := common.HexToAddress(t.Attempts[0].From)
	used, err := c.eth.NonceAt(ctx, from, nil)
	if err != nil {
		return fmt.Errorf("reading the nonce of %s: %w", t.Attempts[0].From, err)
	}
	mined := -1
	for i := range t.Attempts {
		a := &t.Attempts[i]
		r, err := c.eth.TransactionReceipt(ctx, common.HexToHash(a.TxHash))
		if err != nil && !errors.Is(err, ethereum.NotFound) {
			return fmt.Errorf("reading the receipt of %s: %w", a.TxHash, err)
		}
		if err == nil && r != nil {
			ok := r.Status == 1
			a.ChainState, a.BlockNumber, a.Succeeded = "mined", r.BlockNumber.Uint64(), &ok
			word := "succeeded"
			if !ok {
				word = "reverted"
			}
			a.Detail = fmt.Sprintf("mined at block %d (%s), %d confirmation(s)", a.BlockNumber, word, head+1-a.BlockNumber)
			mined = a.Attempt
		}
	}
	for i := range t.Attempts {
		a := &t.Attempts[i]
		if a.ChainState != "" {
			continue
		}
		_, pending, err := c.eth.TransactionByHash(ctx, common.HexToHash(a.TxHash))
		known := err == nil
		if err != nil && !errors.Is(err, ethereum.NotFound) {
			return fmt.Errorf("looking up %s: %w", a.TxHash, err)
		}
		switch {
		case mined >= 0:
			a.ChainState, a.Detail = "replaced", fmt.Sprintf("not mined: attempt %d on the same nonce was", mined)
		case t.State == string(chain.TransferDropped):
			a.ChainState, a.Detail = "dropped", fmt.Sprintf("can never be mined: nonce %d was used by another transaction", a.Nonce)
		case used > a.Nonce:
			a.ChainState, a.Detail = "pending", fmt.Sprintf("nonce %d was used by another transaction, not yet %d block(s) deep",
				a.Nonce, c.act.Confirmations)
		case known && pending:
			a.ChainState, a.Detail = "pending", "in the node's pool, not mined yet"
		default:
			a.ChainState, a.Detail = "pending", "not known to the node (never sent, or dropped from its pool); can still be mined if sent"
		}
	}
	return nil
}

// answerView is the payment's one answer in the outbox.
type answerView struct {
	MessageID   string                    `json:"message_id"`
	Recorded    bool                      `json:"recorded"`
	Published   bool                      `json:"published"`
	PublishedAt string                    `json:"published_at,omitempty"`
	Response    *protocol.PaymentResponse `json:"response,omitempty"`
}

func (e *paymentEnv) answer(ctx context.Context, wfID string) (answerView, error) {
	a := answerView{MessageID: workflows.AnswerID(wfID)}
	r, ok, err := answers.New(e.db, nil, nil).Get(ctx, a.MessageID)
	if err != nil || !ok {
		return a, err
	}
	a.Recorded, a.Published = true, r.Published()
	if r.PublishedAt != nil {
		a.PublishedAt = r.PublishedAt.Format(time.RFC3339Nano) // the text show has always printed
	}
	var resp protocol.PaymentResponse
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		return a, fmt.Errorf("decoding the answer of %s: %w", wfID, err)
	}
	a.Response = &resp
	return a, nil
}

// paymentView is `payment show`.
type paymentView struct {
	payment
	// Step is the payment's step: the live status query while it runs,
	// else the workflow's state and its last published step.
	Step        string                   `json:"step"`
	Summary     string                   `json:"summary"`
	Workflow    *workflowView            `json:"workflow"` // nil: Temporal no longer has it
	Request     *protocol.PaymentRequest `json:"request,omitempty"`
	Reservation *reservationView         `json:"reservation"` // nil: nothing reserved
	Transfers   []transferView           `json:"transfers"`
	Answer      answerView               `json:"answer"`
	// Failing is the step that keeps failing on a retried error, with the
	// error's words (nil: none recorded).
	Failing *activities.FailingStep `json:"failing,omitempty"`
}

func (e *paymentEnv) show(ctx context.Context, queueID, flow string) (*paymentView, error) {
	p, err := e.resolve(ctx, queueID, flow)
	if err != nil {
		return nil, err
	}
	v := &paymentView{payment: p, Transfers: []transferView{}}
	if v.Workflow, err = e.describe(ctx, p.WorkflowID); err != nil {
		return nil, err
	}
	if v.Workflow != nil {
		if v.Request, err = e.request(ctx, p.WorkflowID); err != nil {
			return nil, err
		}
	}
	if v.Reservation, err = e.reservation(ctx, p.WorkflowID); err != nil {
		return nil, err
	}
	if v.Transfers, err = e.transfers(ctx, p.WorkflowID); err != nil {
		return nil, err
	}
	if v.Transfers == nil {
		v.Transfers = []transferView{}
	}
	if v.Answer, err = e.answer(ctx, p.WorkflowID); err != nil {
		return nil, err
	}
	if v.Workflow != nil && v.Workflow.Running {
		if v.Failing, err = activities.FailingStepOf(ctx, e.db, p.WorkflowID); err != nil {
			return nil, err
		}
	}
	switch w := v.Workflow; {
	case w == nil:
		v.Step, v.Summary = "unknown", "Temporal has no workflow "+p.WorkflowID+" (retention expired?)"
	case w.Running:
		if w.Step, err = e.queryStep(ctx, p.WorkflowID); err == nil {
			v.Step, v.Summary = w.Step.Step, w.Step.Summary
		} else {
			v.Step, v.Summary = w.PayflowStatus, "the status query did not answer (is a worker running?): "+err.Error()
		}
	default:
		v.Step = w.PayflowStatus
		v.Summary = fmt.Sprintf("workflow %s at %s", strings.ToLower(w.Status), w.CloseTime.Format(time.RFC3339))
		if !v.Answer.Recorded && w.Status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED.String() {
			v.Summary += " without answering; see `payflowctl payment release`"
		}
	}
	return v, nil
}

func (v *paymentView) text(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "payment:\t%s %s (workflow %s)\n", v.Flow, v.QueueID, v.WorkflowID)
	fmt.Fprintf(tw, "step:\t%s: %s\n", orDash(v.Step), v.Summary)
	if wf := v.Workflow; wf != nil {
		line := fmt.Sprintf("%s, started %s", wf.Status, wf.StartTime.Format(time.RFC3339))
		if wf.CloseTime != nil {
			line += ", closed " + wf.CloseTime.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "workflow:\t%s (run %s)\n", line, wf.RunID)
	}
	if r := v.Request; r != nil {
		line := fmt.Sprintf("%s %s on %s from %s to %s", r.Amount.String(), r.Symbol, r.Chain, r.FromAddress, r.ToAddress)
		if r.OrderID != "" {
			line += ", order_id " + r.OrderID
		}
		fmt.Fprintf(tw, "request:\t%s\n", line)
	}
	if r := v.Reservation; r != nil {
		fmt.Fprintf(tw, "reservation:\t%s: %s %s on %s\n", r.State, r.Amount, r.Symbol, r.Address)
	} else {
		fmt.Fprintf(tw, "reservation:\tnone\n")
	}
	if f := v.Failing; f != nil {
		fmt.Fprintf(tw, "failing:\t%s has failed %d times since %s UTC (last %s), retried: %s\n", f.Activity, f.Attempts,
			f.First, f.Last, f.Error)
	}
	if len(v.Transfers) == 0 {
		fmt.Fprintf(tw, "transfer:\tnothing signed\n")
	}
	for _, t := range v.Transfers {
		verdict := t.State
		switch {
		case t.State == string(chain.TransferMined) && t.Paid && t.Confirmed:
			verdict = fmt.Sprintf("paid in %s at block %d, confirmed", t.TxHash, t.BlockNumber)
		case t.State == string(chain.TransferMined):
			verdict = fmt.Sprintf("mined in %s at block %d", t.TxHash, t.BlockNumber)
			if !t.Confirmed {
				verdict += ", not yet confirmed"
			}
			if t.Reason != "" {
				verdict += "; " + t.Reason
			}
		case t.State == string(chain.TransferDropped):
			verdict = "can never be mined"
			if t.Reason != "" {
				verdict += ": " + t.Reason
			}
		default:
			verdict = "pending: nothing proven yet; an attempt can still be mined"
		}
		label := "transfer"
		if t.Step != label {
			label += " " + t.Step
		}
		fmt.Fprintf(tw, "%s:\t%s\n", label, verdict)
		for _, a := range t.Attempts {
			fmt.Fprintf(tw, "  attempt %d:\t%s nonce %d, signed %s: %s\n", a.Attempt, a.TxHash, a.Nonce, a.SignedAt, a.Detail)
		}
	}
	switch a := v.Answer; {
	case !a.Recorded:
		fmt.Fprintf(tw, "answer:\tnone recorded\n")
	default:
		line := fmt.Sprintf("status %d", a.Response.Status)
		if a.Response.Error != "" {
			line += fmt.Sprintf(" (%s)", a.Response.Error)
		}
		if a.Published {
			line += ", published " + a.PublishedAt
		} else {
			line += ", recorded, not yet published"
		}
		fmt.Fprintf(tw, "answer:\t%s\n", line)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// listRow is one payment of `payment list`.
type listRow struct {
	QueueID    string     `json:"queue_id"`
	Flow       string     `json:"flow"`
	WorkflowID string     `json:"workflow_id"`
	Status     string     `json:"status"`   // PayflowStatus
	Workflow   string     `json:"workflow"` // Running, Terminated, …
	Address    string     `json:"address,omitempty"`
	TxHash     string     `json:"tx_hash,omitempty"`
	StartTime  time.Time  `json:"start_time"`
	CloseTime  *time.Time `json:"close_time,omitempty"`
}

type listView []listRow

// statusFailing lists the running payments whose step keeps failing on a
// retried error (failing_steps), whatever their PayflowStatus.
const statusFailing = "failing"

var (
	statusValue = regexp.MustCompile(`^[a-z][a-z-]*$`)
	execStates  = map[string]string{"running": "Running", "completed": "Completed", "failed": "Failed",
		"canceled": "Canceled", "cancelled": "Canceled", "terminated": "Terminated", "timed-out": "TimedOut"}
)

func (e *paymentEnv) list(ctx context.Context, status, execution string, limit int) (listView, error) {
	if limit <= 0 {
		limit = 100
	}
	if status == statusFailing {
		return e.listFailing(ctx, limit)
	}
	q := fmt.Sprintf("%s IN ('%s','%s')", workflows.AttrFlow.GetName(), protocol.FlowWithdraw, protocol.FlowPay)
	if status != "" {
		if !statusValue.MatchString(status) {
			return nil, fmt.Errorf("--status %q is not a payment status (e.g. stuck, awaiting-approval, confirming, failed, succeeded)", status)
		}
		q += fmt.Sprintf(" AND %s = '%s'", workflows.AttrStatus.GetName(), status)
	}
	if execution != "" {
		s, ok := execStates[execution]
		if !ok {
			return nil, fmt.Errorf("--execution %q: want running, completed, failed, canceled, terminated or timed-out", execution)
		}
		q += fmt.Sprintf(" AND ExecutionStatus = '%s'", s)
	}
	out := listView{}
	var token []byte
	for len(out) < limit {
		resp, err := e.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: e.cfg.Temporal.Namespace, PageSize: int32(min(limit-len(out), 1000)), Query: q, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("listing payments in Temporal: %w", err)
		}
		for _, ex := range resp.GetExecutions() {
			sa := ex.GetSearchAttributes().GetIndexedFields()
			r := listRow{QueueID: keyword(sa, workflows.AttrQueueID.GetName()), Flow: keyword(sa, workflows.AttrFlow.GetName()),
				WorkflowID: ex.GetExecution().GetWorkflowId(), Status: keyword(sa, workflows.AttrStatus.GetName()),
				Workflow: ex.GetStatus().String(), Address: keyword(sa, workflows.AttrAddress.GetName()),
				TxHash: keyword(sa, workflows.AttrTxHash.GetName()), StartTime: ex.GetStartTime().AsTime().UTC()}
			if ex.GetCloseTime() != nil && ex.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				t := ex.GetCloseTime().AsTime().UTC()
				r.CloseTime = &t
			}
			if len(out) < limit {
				out = append(out, r)
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return out, nil
}

func (l listView) text(w io.Writer) {
	if len(l) == 0 {
		fmt.Fprintln(w, "no payments")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE_ID\tFLOW\tSTATUS\tWORKFLOW\tSTARTED\tADDRESS\tTX_HASH")
	for _, r := range l {
		c := listColumns
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cut(r.QueueID, c.queueID), cut(r.Flow, c.flow),
			cut(orDash(r.Status), c.status), cut(r.Workflow, c.workflow), r.StartTime.Format(time.RFC3339),
			cut(orDash(r.Address), c.address), cut(orDash(r.TxHash), c.txHash))
	}
	tw.Flush()
}

// listColumns caps each column of the list table so that a row fits a
// 120-column terminal: 26+8+17+10+20+13+13 characters and six gaps of two
// (the start time is always 20, RFC 3339 in UTC). A queue_id may have 128
// characters; `payflowctl payment show` and --json give every value whole.
var listColumns = struct{ queueID, flow, status, workflow, address, txHash int }{
	queueID: 26, flow: 8, status: 17, workflow: 10, address: 13, txHash: 13,
}

// cut shortens s to at most max characters (runes, as tabwriter counts
// them), ending a shortened value with "…" so that a cut is never mistaken
// for a whole id.
func cut(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// keyword decodes a Keyword search attribute ("" when absent).
func keyword(fields map[string]*commonpb.Payload, name string) string {
	p, ok := fields[name]
	if !ok || p == nil {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}

// messageView is the outcome of approve, reject and release.
type messageView struct {
	payment
	Action  string `json:"action"`
	Message string `json:"message"`
	// Answer is the answer release recorded and published.
	Answer *protocol.PaymentResponse `json:"answer,omitempty"`
	// Reservation is the reservation release closed.
	Reservation *reservationView `json:"reservation,omitempty"`
}

func (m *messageView) text(w io.Writer) { fmt.Fprintln(w, m.Message) }

// decideApproval sends an operator's Approval to a payment that waits for one.
func (e *paymentEnv) decideApproval(ctx context.Context, queueID, flow string, dec workflows.Approval) (*messageView, error) {
	p, err := e.resolve(ctx, queueID, flow)
	if err != nil {
		return nil, err
	}
	action := "approve"
	if !dec.Approve {
		action = "reject"
	}
	wf, err := e.describe(ctx, p.WorkflowID)
	if err != nil {
		return nil, err
	}
	if wf == nil || !wf.Running {
		state := "unknown to Temporal"
		if wf != nil {
			state = strings.ToLower(wf.Status)
		}
		return nil, refuse("cannot %s %s: its workflow is %s; only a running payment waiting for approval can be decided",
			action, p.WorkflowID, state)
	}
	st, err := e.queryStep(ctx, p.WorkflowID)
	if err != nil {
		return nil, fmt.Errorf("asking %s for its step (is a worker running?): %w", p.WorkflowID, err)
	}
	if st.Step != workflows.StepApproval {
		return nil, refuse("cannot %s %s: it is not waiting for approval (step %s: %s)", action, p.WorkflowID, st.Step, st.Summary)
	}
	if err := e.tc.SignalWorkflow(ctx, p.WorkflowID, "", workflows.SignalApproval, dec); err != nil {
		return nil, fmt.Errorf("signalling %s: %w", p.WorkflowID, err)
	}
	msg := fmt.Sprintf("approved %s by %s: it pays now and answers when the chain confirms", p.WorkflowID, dec.By)
	if !dec.Approve {
		msg = fmt.Sprintf("rejected %s by %s: it releases its reservation and answers status=0", p.WorkflowID, dec.By)
	}
	return &messageView{payment: p, Action: action, Message: msg}, nil
}

// release does by hand what a payment does when the chain proves its
// transfer can never be mined (runPayment → decide → publish): it records
// the status=0 answer and releases the reservation in one database
// transaction (DecidePayment), then publishes that answer once
// (PublishResult, message id AnswerID). It refuses unless the workflow is
// closed without an answer and the chain proves that no attempt can ever be
// mined (or nothing was signed).
func (e *paymentEnv) release(ctx context.Context, queueID, flow string, dryRun bool) (*messageView, error) {
	p, err := e.resolve(ctx, queueID, flow)
	if err != nil {
		return nil, err
	}
	wf, err := e.describe(ctx, p.WorkflowID)
	if err != nil {
		return nil, err
	}
	switch {
	case wf == nil:
		return nil, refuse("cannot release %s: Temporal no longer has its workflow, so its request (recipient, order_id) "+
			"is unknown and no answer can be written", p.WorkflowID)
	case wf.Running:
		return nil, refuse("cannot release %s: its workflow is still running; it will answer itself "+
			"(to stop waiting for an approval, reject it)", p.WorkflowID)
	}
	ans, err := e.answer(ctx, p.WorkflowID)
	if err != nil {
		return nil, err
	}
	switch {
	case ans.Recorded && ans.Published:
		return nil, refuse("cannot release %s: its answer (status %d) is already recorded and was published %s",
			p.WorkflowID, ans.Response.Status, ans.PublishedAt)
	case ans.Recorded:
		// Decided, not yet sent (a release or a run stopped before the
		// broker confirmed): the only thing left is what a reset run would
		// do, publishing the stored answer once.
		out := &messageView{payment: p, Action: "publish", Answer: ans.Response}
		if dryRun {
			out.Message = fmt.Sprintf("%s answered status=%d but the answer is not published; release would publish it (--dry-run)",
				p.WorkflowID, ans.Response.Status)
			return out, nil
		}
		c, err := e.anyChain(ctx)
		if err != nil {
			return nil, err
		}
		if err := c.act.PublishResult(ctx, activities.PublishInput{Flow: p.Flow, MessageID: ans.MessageID,
			Payment: ans.Response}); err != nil {
			return nil, fmt.Errorf("publishing the recorded answer of %s: %w", p.WorkflowID, err)
		}
		out.Message = fmt.Sprintf("%s had answered status=%d without publishing it; published it now, message id %s",
			p.WorkflowID, ans.Response.Status, ans.MessageID)
		return out, nil
	}
	req, err := e.request(ctx, p.WorkflowID)
	if err != nil {
		return nil, err
	}
	if req == nil {
		return nil, refuse("cannot release %s: its request is no longer in Temporal's history", p.WorkflowID)
	}
	res, err := e.reservation(ctx, p.WorkflowID)
	if err != nil {
		return nil, err
	}
	if res != nil && res.State == "settled" {
		return nil, refuse("cannot release %s: its reservation is settled (the money left %s); reset the workflow so it answers",
			p.WorkflowID, res.Address)
	}

	// The chain's verdict, exactly as the workflow asks for it.
	resp := protocol.PaymentResponse{QueueID: req.QueueID, Status: protocol.StatusFailed, Amount: req.Amount, Chain: req.Chain,
		Symbol: req.Symbol, OrderID: req.OrderID, FromAddress: req.FromAddress, ToAddress: req.ToAddress}
	if res != nil {
		resp.FromAddress = res.Address // the wallet that was to pay (begin.PayingAddress)
	}
	var reason string
	c, err := e.on(ctx, req.Chain)
	if err != nil {
		return nil, err
	}
	_, err = c.act.Transfers.Stored(ctx, p.WorkflowID, "transfer")
	switch {
	case errors.Is(err, chain.ErrNotSigned):
		closed := time.Now()
		if wf.CloseTime != nil {
			closed = *wf.CloseTime
		}
		if age := time.Since(closed); age < releaseSettleTime {
			return nil, refuse("cannot release %s yet: nothing is signed for it, but its workflow closed only %s ago and a worker "+
				"may still be finishing its last step; try again after %s", p.WorkflowID, age.Round(time.Second),
				closed.Add(releaseSettleTime).Format(time.RFC3339))
		}
		reason = "nothing was signed for it"
	case err != nil:
		return nil, fmt.Errorf("reading the transfer of %s: %w", p.WorkflowID, err)
	default:
		insp, err := c.act.InspectTransfer(ctx, activities.InspectInput{WorkflowID: p.WorkflowID, Step: "transfer"})
		if err != nil {
			return nil, fmt.Errorf("asking the chain about %s: %w", p.WorkflowID, err)
		}
		switch insp.State {
		case string(chain.TransferDropped):
			reason = insp.Reason
			if reason == "" {
				reason = "its nonce was used by another transaction"
			}
			resp.TxHash, resp.BlockNumber = insp.TxHash, insp.BlockNumber
		case string(chain.TransferMined):
			return nil, refuse("cannot release %s: %s was mined at block %d; the chain decides it, not an operator: "+
				"reset the workflow and it settles or releases by the receipt", p.WorkflowID, insp.TxHash, insp.BlockNumber)
		default:
			return nil, refuse("cannot release %s: its transfer (latest attempt %s) can still be mined; it may be released only "+
				"once its nonce is used by another transaction %d block(s) deep", p.WorkflowID, insp.TxHash, c.act.Confirmations)
		}
	}
	resp.Error = "released by an operator: " + reason

	key := ""
	if res != nil {
		key = p.WorkflowID
	}
	out := &messageView{payment: p, Action: "release", Answer: &resp, Reservation: res}
	if dryRun {
		out.Message = fmt.Sprintf("%s may be released (%s); nothing done (--dry-run)", p.WorkflowID, reason)
		return out, nil
	}
	// No attempt was mined (that is what allows a release): the gas its
	// transfer held returns whole, with the answer.
	if err := c.act.DecidePayment(ctx, activities.DecideInput{Flow: p.Flow, Key: key, AnswerID: workflows.AnswerID(p.WorkflowID),
		Answer: resp, Gas: &activities.ChargeInput{WorkflowID: p.WorkflowID, Step: "transfer", TxHash: resp.TxHash}}); err != nil {
		return nil, fmt.Errorf("recording the answer of %s and releasing its reservation: %w", p.WorkflowID, err)
	}

	// DecidePayment keeps an answer recorded first (a concurrent reset):
	// publish what is stored, as the workflow does.
	stored, err := e.answer(ctx, p.WorkflowID)
	if err != nil {
		return nil, err
	}
	if stored.Response != nil {
		resp = *stored.Response
		out.Answer = &resp
	}
	if err := c.act.PublishResult(ctx, activities.PublishInput{Flow: p.Flow, MessageID: workflows.AnswerID(p.WorkflowID),
		Payment: &resp}); err != nil {
		return nil, fmt.Errorf("publishing the answer of %s (it is recorded; run release again to publish it): %w",
			p.WorkflowID, err)
	}
	if out.Reservation, err = e.reservation(ctx, p.WorkflowID); err != nil {
		return nil, err
	}
	held := "nothing was reserved"
	if r := out.Reservation; r != nil {
		held = fmt.Sprintf("reservation of %s %s on %s %s", r.Amount, r.Symbol, r.Address, r.State)
	}
	out.Message = fmt.Sprintf("released %s: %s; answered status=%d (%s), message id %s", p.WorkflowID, held, resp.Status,
		resp.Error, workflows.AnswerID(p.WorkflowID))
	return out, nil
}
