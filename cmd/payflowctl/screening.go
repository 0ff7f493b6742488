package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"payflow/audit"
	"payflow/config"
	"payflow/internal/app"
	"payflow/ledger"
	"payflow/risk/denylist"
	"payflow/risk/holds"
	"payflow/workflows"
)

const depositUsage = `usage: payflowctl deposit COMMAND [flags]
  list-held [--all]                        deposits screening froze (held, or being returned);
                                           --all: released and returned ones too
  release -chain C -tx H -log N --reason R [--as U]
                                           release a held deposit: its money becomes available and
                                           is swept like any deposit's
  return -chain C -tx H -log N --reason R [--as U] [--wait]
                                           pay a held deposit back to its sender: a transfer that
                                           spends its hold, signed by payflow-signer against it;
                                           the deposit wallet pays the gas (it needs the native
                                           coin available); --wait: until the chain decides
Every release and return is recorded in the audit trail with who (--as, else the OS user) and why.
Flags for every command: --json, --config PATH, --env-file PATH (as payflowctl payment's).
`

const denylistUsage = `usage: payflowctl denylist COMMAND [flags]
  list                                     the addresses on the deny list and their sources
  add -address A -source S --reason R [--as U]
                                           list an address (S: where the listing comes from, e.g.
                                           "OFAC-SDN 2026-11-30")
  remove -address A --reason R [--as U]    delist an address
  reload --reason R [--as U]               have every worker and payflow-signer read the file now
                                           (it is read within seconds of any change anyway)
The file is risk.deny_list of the configuration (or --file PATH); edits write a new version and
rename it over the file, so a reader never sees half of one. Every change is recorded in the
audit trail with who (--as, else the OS user) and why.
Flags for every command: --json, --config PATH, --env-file PATH, --file PATH.
`

// screenFlags are the flags of the deposit and denylist commands.
type screenFlags struct {
	fs      *flag.FlagSet
	json    bool
	config  string
	envFile string
	file    string
	actor   actorFlags
	chain   string
	tx      string
	log     uint
	all     bool
	wait    bool
	address string
	source  string
}

func newScreenFlags(name string) *screenFlags {
	f := &screenFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.BoolVar(&f.json, "json", false, "JSON output")
	f.fs.StringVar(&f.config, "config", os.Getenv(config.EnvConfigPath), "config.json path")
	f.fs.StringVar(&f.envFile, "env-file", "", "file of KEY='value' environment lines")
	f.actor.register(f.fs)
	return f
}

func (f *screenFlags) parse(args []string, usage string) error {
	pos, err := parseInterspersed(f.fs, args)
	if err != nil {
		return fmt.Errorf("%v\n%s", err, usage)
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q\n%s", pos[0], usage)
	}
	return nil
}

func cmdDeposit(ctx context.Context, args []string) error {
	if len(args) < 1 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, depositUsage)
		os.Exit(2)
	}
	sub, args := args[0], args[1:]
	f := newScreenFlags("deposit " + sub)
	switch sub {
	case "list-held":
		f.fs.BoolVar(&f.all, "all", false, "released and returned deposits too")
	case "release", "return":
		f.fs.StringVar(&f.chain, "chain", "", "the deposit's chain")
		f.fs.StringVar(&f.tx, "tx", "", "the deposit's tx_hash")
		f.fs.UintVar(&f.log, "log", 0, "the deposit's log_index")
		if sub == "return" {
			f.fs.BoolVar(&f.wait, "wait", false, "wait until the chain decides the return")
		}
	default:
		fmt.Fprint(os.Stderr, depositUsage)
		os.Exit(2)
	}
	if err := f.parse(args, depositUsage); err != nil {
		return err
	}
	if sub != "list-held" {
		if err := f.actor.check("deposit " + sub); err != nil {
			return err
		}
		if f.chain == "" || f.tx == "" {
			return refuse("-chain and -tx name the deposit (and -log its log_index, default 0)")
		}
	}
	cfg, err := loadCLIConfig(f.config, f.envFile)
	if err != nil {
		return err
	}
	db, err := app.OpenDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	st := holds.New(db)
	switch sub {
	case "list-held":
		states := []string{holds.StateHeld, holds.StateReturning}
		if f.all {
			states = nil
		}
		hs, err := st.List(ctx, states...)
		if err != nil {
			return err
		}
		if hs == nil {
			hs = []holds.Hold{}
		}
		if f.json {
			return printOut(hs, true)
		}
		heldTable(os.Stdout, hs)
		return nil
	case "release":
		return releaseHold(ctx, db, st, f)
	default:
		return returnHold(ctx, cfg, db, st, f)
	}
}

// heldTable prints holds one a line.
func heldTable(w io.Writer, hs []holds.Hold) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHAIN\tTX_HASH\tLOG\tSTATE\tAMOUNT\tSYMBOL\tWALLET\tSENDER\tHELD_AT\tRISK")
	for _, h := range hs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Chain, h.TxHash, h.LogIndex, h.State, h.Amount, h.Symbol,
			h.Address, h.Sender, h.HeldAt.UTC().Format(time.RFC3339), h.Risk)
	}
	tw.Flush()
	if len(hs) == 0 {
		fmt.Fprintln(w, "(no held deposits)")
	}
}

// heldDeposit reads the hold -chain -tx -log names and refuses unless it is
// held.
func heldDeposit(ctx context.Context, st *holds.Store, f *screenFlags) (holds.Hold, error) {
	h, err := st.Get(ctx, strings.ToUpper(f.chain), f.tx, f.log)
	if errors.Is(err, holds.ErrNotFound) {
		return h, refuse("no held deposit %s %s log %d (payflowctl deposit list-held --all lists them)", f.chain, f.tx, f.log)
	}
	if err != nil {
		return h, err
	}
	if h.State != holds.StateHeld {
		return h, refuse("deposit %s %s log %d is %s, not held", h.Chain, h.TxHash, h.LogIndex, h.State)
	}
	return h, nil
}

// record appends the audit entry of an action and its outcome (failed: err;
// see actorFlags.record).
func (f *screenFlags) record(ctx context.Context, db *sql.DB, action, subject string, changes any, err error) error {
	return f.actor.record(context.WithoutCancel(ctx), db, audit.Entry{Action: action, Subject: subject,
		Changes: audit.Changes(changes)}, err)
}

type holdChange struct {
	Chain    string `json:"chain"`
	TxHash   string `json:"tx_hash"`
	LogIndex uint   `json:"log_index"`
	Wallet   string `json:"wallet"`
	Sender   string `json:"sender"`
	Symbol   string `json:"symbol"`
	Amount   string `json:"amount"`
	From     string `json:"from_state"`
	To       string `json:"to_state"`
	Workflow string `json:"return_workflow_id,omitempty"`
}

func changeOf(h holds.Hold, to string) holdChange {
	return holdChange{Chain: h.Chain, TxHash: h.TxHash, LogIndex: h.LogIndex, Wallet: h.Address, Sender: h.Sender, Symbol: h.Symbol,
		Amount: h.Amount.String(), From: h.State, To: to}
}

// releaseHold releases the hold's reservation and marks the deposit
// released, in one database transaction, then records it.
func releaseHold(ctx context.Context, db *sql.DB, st *holds.Store, f *screenFlags) error {
	h, err := heldDeposit(ctx, st, f)
	if err != nil {
		return err
	}
	led := ledger.NewUnbatched(db)
	defer led.Drain()
	_, err = led.Close(ctx, h.Key(), "", ledger.OpRelease,
		holds.Move(h.Chain, h.TxHash, h.LogIndex, []string{holds.StateHeld}, holds.StateReleased, "", ""))
	if err = f.record(ctx, db, audit.ActionDepositRelease, h.Key(), changeOf(h, holds.StateReleased), err); err != nil {
		return err
	}
	return printOut(&noticeView{Message: fmt.Sprintf("released %s %s on %s (deposit %s log %d from %s): available, and swept like any deposit",
		h.Amount, h.Symbol, h.Address, h.TxHash, h.LogIndex, h.Sender)}, f.json)
}

// returnHold starts the deposit's ReturnDeposit workflow and records it.
func returnHold(ctx context.Context, cfg config.Config, db *sql.DB, st *holds.Store, f *screenFlags) error {
	h, err := heldDeposit(ctx, st, f)
	if err != nil {
		return err
	}
	opts, err := app.TemporalOptions(cfg.Temporal)
	if err != nil {
		return err
	}
	opts.Logger = tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tc, err := client.DialContext(dctx, opts)
	if err != nil {
		return fmt.Errorf("dialing Temporal at %s: %w", cfg.Temporal.Address, err)
	}
	defer tc.Close()
	wfID := workflows.ReturnDepositWorkflowID(h.Chain, h.TxHash, h.LogIndex)
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wfID, TaskQueue: cfg.TaskQueue(h.Chain)},
		workflows.ReturnDeposit, workflows.ReturnDepositInput{Chain: h.Chain, TxHash: h.TxHash, LogIndex: h.LogIndex,
			ConfirmTimeout: cfg.Payment.ConfirmTimeout.Duration})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return refuse("a return of this deposit is running already: workflow %s", wfID)
	}
	ch := changeOf(h, holds.StateReturning)
	ch.Workflow = wfID
	if err := f.record(ctx, db, audit.ActionDepositReturn, h.Key(), ch, err); err != nil {
		return err
	}
	msg := fmt.Sprintf("returning %s %s from %s to %s: workflow %s (payflowctl deposit list-held shows it returning)",
		h.Amount, h.Symbol, h.Address, h.Sender, wfID)
	if !f.wait {
		return printOut(&noticeView{Message: msg}, f.json)
	}
	var res workflows.ReturnDepositResult
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("waiting for %s: %w", wfID, err)
	}
	if !res.Returned {
		return refuse("not returned, the deposit stays held: %s", res.Reason)
	}
	return printOut(&noticeView{Message: fmt.Sprintf("returned %s %s to %s in %s", h.Amount, h.Symbol, h.Sender, res.TxHash)}, f.json)
}

// denyEntry is one line of denylist list.
type denyEntry struct {
	Address string `json:"address"`
	Source  string `json:"source"`
	Line    int    `json:"line"`
}

func cmdDenylist(ctx context.Context, args []string) error {
	if len(args) < 1 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, denylistUsage)
		os.Exit(2)
	}
	sub, args := args[0], args[1:]
	f := newScreenFlags("denylist " + sub)
	f.fs.StringVar(&f.file, "file", "", "the deny list file (default: risk.deny_list)")
	switch sub {
	case "list", "reload":
	case "add":
		f.fs.StringVar(&f.address, "address", "", "the address")
		f.fs.StringVar(&f.source, "source", "", "where the listing comes from")
	case "remove":
		f.fs.StringVar(&f.address, "address", "", "the address")
	default:
		fmt.Fprint(os.Stderr, denylistUsage)
		os.Exit(2)
	}
	if err := f.parse(args, denylistUsage); err != nil {
		return err
	}
	if sub != "list" {
		if err := f.actor.check("denylist " + sub); err != nil {
			return err
		}
	}
	cfg, err := loadCLIConfig(f.config, f.envFile)
	if err != nil {
		return err
	}
	path := f.file
	if path == "" {
		path = cfg.Risk.DenyList
	}
	if path == "" {
		return refuse("no deny list: risk.deny_list is not set (or pass --file)")
	}
	if sub == "list" {
		l, err := denylist.Load(path)
		if err != nil {
			return err
		}
		out := []denyEntry{}
		for _, e := range l.Entries() {
			out = append(out, denyEntry{Address: e.Address, Source: e.Source, Line: e.Line})
		}
		if f.json {
			return printOut(out, true)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LINE\tADDRESS\tSOURCE")
		for _, e := range out {
			fmt.Fprintf(tw, "%d\t%s\t%s\n", e.Line, e.Address, e.Source)
		}
		tw.Flush()
		fmt.Printf("%d addresses in %s\n", len(out), path)
		return nil
	}
	db, err := app.OpenDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	var msg string
	switch sub {
	case "add":
		e, err := denylist.Add(path, f.address, f.source)
		if errors.Is(err, denylist.ErrListed) || errors.Is(err, denylist.ErrBadAddress) || errors.Is(err, denylist.ErrNoSource) {
			return refuse("%v", err)
		}
		if err = f.record(ctx, db, audit.ActionDenyListChange, path, map[string]string{"added": e.Address, "source": e.Source}, err); err != nil {
			return err
		}
		msg = fmt.Sprintf("listed %s (%s) in %s: payments to it are refused and deposits from it held within seconds", e.Address, e.Source, path)
	case "remove":
		e, err := denylist.Remove(path, f.address)
		if errors.Is(err, denylist.ErrNotListed) || errors.Is(err, denylist.ErrBadAddress) {
			return refuse("%v", err)
		}
		if err = f.record(ctx, db, audit.ActionDenyListChange, path, map[string]string{"removed": e.Address, "source": e.Source}, err); err != nil {
			return err
		}
		msg = fmt.Sprintf("delisted %s (was: %s) in %s; deposits held before stay held until released or returned", e.Address, e.Source, path)
	default: // reload
		l, err := denylist.Load(path)
		if err == nil {
			now := time.Now()
			err = os.Chtimes(path, now, now) // a changed mtime: every reader reloads at its next look
		}
		if err = f.record(ctx, db, audit.ActionDenyListReload, path, map[string]int{"entries": l.Len()}, err); err != nil {
			return err
		}
		msg = fmt.Sprintf("%s parses (%d addresses); every worker and payflow-signer reads it within seconds (SIGHUP: at once)", path, l.Len())
	}
	return printOut(&noticeView{Message: msg}, f.json)
}

// noticeView is what a deposit or denylist change did, in a sentence.
type noticeView struct {
	Message string `json:"message"`
}

func (n *noticeView) text(w io.Writer) { fmt.Fprintln(w, n.Message) }
