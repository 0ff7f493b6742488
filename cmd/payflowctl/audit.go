package main

// The operator audit trail from payflowctl's side: every command that acts
// on money takes --as (who; default the OS user) and --reason (why;
// required), and records what it did in the trail (package audit) once it
// has acted, failure included. `payflowctl audit list` shows the trail.

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"payflow/audit"
	"payflow/protocol"
)

// actorFlags are --as and --reason, which every acting command takes.
type actorFlags struct {
	as, reason string
}

// register adds --as and --reason to fs. --by is kept as another name of
// --as for scripts written before the trail existed.
func (a *actorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.as, "as", currentUser(), "who acts, as recorded in the audit trail (default: the OS user)")
	fs.StringVar(&a.as, "by", currentUser(), "the same as --as")
	fs.StringVar(&a.reason, "reason", "", "why (required: recorded in the audit trail)")
}

// check refuses an action without a reason, before anything is done.
func (a *actorFlags) check(what string) error {
	if strings.TrimSpace(a.reason) == "" {
		return refuse("%s needs --reason: every operator action is recorded with who and why", what)
	}
	if strings.TrimSpace(a.as) == "" {
		return refuse("%s needs --as: every operator action is recorded with who and why", what)
	}
	return nil
}

// record appends the action to the trail: done when actErr is nil, else
// failed with actErr's text. A refusal (nothing was done) is recorded too:
// someone asked. The returned error is actErr, or the recording's error
// when only that failed (the action happened: say so loudly).
func (a *actorFlags) record(ctx context.Context, db *sql.DB, e audit.Entry, actErr error) error {
	e.Actor, e.Reason, e.Source = a.as, a.reason, audit.SourceCLI
	if actErr != nil {
		e.Outcome = audit.OutcomeFailed + ": " + actErr.Error()
	}
	if _, err := audit.New(db).Record(ctx, e); err != nil {
		if actErr != nil {
			return actErr
		}
		return fmt.Errorf("the action was done but could not be recorded in the audit trail (record it by hand): %w", err)
	}
	return actErr
}

const auditUsage = `usage: payflowctl audit list [--payment QUEUE_ID [--flow withdraw|pay]] [--action A] [--limit N] [--json]

  list    the operator audit trail, newest first: when, who (--as or the OS user, or the
          identity Temporal gave a signal's sender), through what (payflowctl or temporal),
          the action, what it acted on, why, what it changed and how it ended.
          --payment selects the records of one payment (its queue_id).
Flags: --config PATH, --env-file PATH as for payment commands.
`

func cmdAudit(ctx context.Context, args []string) error {
	if len(args) < 1 || args[0] != "list" {
		fmt.Fprint(os.Stderr, auditUsage)
		os.Exit(2)
	}
	fs := flag.NewFlagSet("audit list", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f ctlFlags
	f.register(fs)
	queueID := fs.String("payment", "", "the queue_id of a withdraw or pay")
	flow := fs.String("flow", "", "withdraw or pay (default: whichever has the records)")
	action := fs.String("action", "", "only this action (e.g. payment.approve)")
	limit := fs.Int("limit", 100, "at most this many records")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
		fmt.Fprint(os.Stderr, auditUsage)
		os.Exit(2)
	}
	db, err := f.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	trail := audit.New(db)
	var out []audit.Entry
	if *queueID == "" {
		out, err = trail.List(ctx, audit.Filter{Action: *action, Limit: *limit})
	} else {
		flows := []protocol.Flow{protocol.FlowWithdraw, protocol.FlowPay}
		if *flow != "" {
			if *flow != string(protocol.FlowWithdraw) && *flow != string(protocol.FlowPay) {
				return fmt.Errorf("--flow must be withdraw or pay, not %q", *flow)
			}
			flows = []protocol.Flow{protocol.Flow(*flow)}
		}
		for _, fl := range flows {
			got, err := trail.List(ctx, audit.Filter{Payment: workflowIDOf(fl, *queueID), Action: *action, Limit: *limit})
			if err != nil {
				return err
			}
			out = append(out, got...)
		}
	}
	if err != nil {
		return err
	}
	if out == nil {
		out = []audit.Entry{}
	}
	if f.json {
		return printOut(out, true)
	}
	printTrail(os.Stdout, out)
	return nil
}

func printTrail(w io.Writer, es []audit.Entry) {
	if len(es) == 0 {
		fmt.Fprintln(w, "no records")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT (UTC)\tWHO\tVIA\tACTION\tSUBJECT\tOUTCOME\tREASON\tCHANGES")
	for _, e := range es {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.At.UTC().Format("2006-01-02 15:04:05"), e.Actor, e.Source,
			e.Action, e.Subject, cut(e.Outcome, 60), cut(e.Reason, 60), cut(string(e.Changes), 80))
	}
	_ = tw.Flush()
}

// paymentRecord is the audit record of a payment command (approve, reject,
// release) on queueID; m is what the command did (nil when it did nothing).
func paymentRecord(sub, queueID, flow string, m *messageView) audit.Entry {
	action := map[string]string{"approve": audit.ActionApprove, "reject": audit.ActionReject, "release": audit.ActionRelease}[sub]
	e := audit.Entry{Action: action, Subject: queueID}
	changes := map[string]any{"queue_id": queueID}
	if flow != "" {
		changes["flow"] = flow
	}
	if m != nil {
		e.Subject, e.Payment = m.WorkflowID, m.WorkflowID
		changes["flow"], changes["result"] = m.Flow, m.Message
		if m.Answer != nil {
			changes["answer_status"] = m.Answer.Status
		}
		if m.Reservation != nil {
			changes["reservation"] = m.Reservation
		}
	} else if flow != "" {
		e.Payment = workflowIDOf(protocol.Flow(flow), queueID)
	}
	e.Changes = audit.Changes(changes)
	return e
}
