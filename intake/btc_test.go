package intake

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"

	"payflow/chain/btc"
	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/protocol"
	"payflow/workflows"
)

// btcFixture is newFixture with a Bitcoin chain BTC on simnet, and two
// addresses of it.
func btcFixture(t *testing.T) (*fixture, string, string) {
	t.Helper()
	f := newFixture(t)
	f.cfg.BTCChains = map[string]config.BTCChain{"BTC": {Network: "simnet", Confirmations: 1, ConfirmTimeout: config.Duration{Duration: 45 * time.Second},
		Native: config.NativeCoin{Symbol: "BTC", Decimals: 8, ApprovalThreshold: "2", SweepThreshold: "3"}}}
	f.in = New(f.cfg, f.tc, f.pub, f.in.log)
	params, _ := btc.Params("simnet")
	var addrs [2]string
	for i := range addrs {
		wif, err := btc.NewWIF(params)
		if err != nil {
			t.Fatal(err)
		}
		if addrs[i], err = btc.WIFAddress(wif, params); err != nil {
			t.Fatal(err)
		}
	}
	return f, addrs[0], addrs[1]
}

// TestBTCTopupWatchesABech32Address: a topup on BTC naming a bech32 address
// of its network (any case) starts its watch on BTC's own task queue; an
// EVM address on BTC, or a BTC address on ETH, is answered status=0 saying
// what an address of the chain is.
func TestBTCTopupWatchesABech32Address(t *testing.T) {
	f, addr, _ := btcFixture(t)
	topup := func(chain, address string) []byte {
		return f.sign(map[string]any{"chain": chain, "symbol": chain, "address": address, "timestamp": time.Now().Unix()})
	}
	if err := f.handle(protocol.FlowTopup, topup("BTC", strings.ToUpper(addr))); err != nil {
		t.Fatal(err)
	}
	id := workflows.TopupWorkflowID("BTC", addr)
	t.Cleanup(func() { _ = f.tc.TerminateWorkflow(context.Background(), id, "", "intake test done") })
	desc, err := f.tc.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatalf("no watch of %s: %v", addr, err)
	}
	if q := desc.GetExecutionConfig().GetTaskQueue().GetName(); q != f.cfg.Temporal.TaskQueue+".BTC" {
		t.Errorf("task queue %q", q)
	}
	it := f.tc.GetWorkflowHistory(context.Background(), id, "", false, 0)
	ev, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	var in workflows.TopupInput
	if err := converter.GetDefaultDataConverter().FromPayload(ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0], &in); err != nil {
		t.Fatal(err)
	}
	if in != (workflows.TopupInput{Chain: "BTC", Symbol: "BTC", Address: addr}) {
		t.Errorf("topup input %+v", in)
	}

	evm := stacktest.RandomAddress()
	for _, c := range []struct{ chain, address, want string }{
		{"BTC", evm, "is not a native segwit (bech32, P2WPKH) address of BTC's network simnet"},
		{"ETH", addr, "is not a 0x-prefixed 20-byte hex address"},
	} {
		n := len(f.pub.all())
		if err := f.handle(protocol.FlowTopup, topup(c.chain, c.address)); err != nil {
			t.Fatalf("%s on %s: %v", c.address, c.chain, err)
		}
		got := f.pub.all()
		if len(got) != n+1 {
			t.Fatalf("%s on %s: %d answers", c.address, c.chain, len(got)-n)
		}
		var r protocol.TopupResponse
		if err := json.Unmarshal(got[n].Body, &r); err != nil {
			t.Fatal(err)
		}
		if r.Status != protocol.StatusFailed || !strings.Contains(r.Error, c.want) {
			t.Errorf("%s on %s: status %d error %q, want %q", c.address, c.chain, r.Status, r.Error, c.want)
		}
	}
}

// TestBTCPaymentsStartOnTheChainsQueue: a well-formed withdraw or pay on
// BTC starts its payment on BTC's task queue with the chain's own
// confirm_timeout (the replacement delay); 9 decimals are refused.
func TestBTCPaymentsStartOnTheChainsQueue(t *testing.T) {
	f, from, to := btcFixture(t)
	for _, c := range []struct {
		flow         protocol.Flow
		amount, want string
	}{
		{protocol.FlowWithdraw, "0.12345678", ""},
		{protocol.FlowPay, "1", ""},
		{protocol.FlowWithdraw, "0.123456789", "has more than 8 decimals"},
	} {
		qid := stacktest.RandomID("it-btc-")
		m := map[string]any{"queue_id": qid, "from_address": from, "to_address": to, "amount": json.Number(c.amount),
			"chain": "BTC", "symbol": "BTC", "timestamp": time.Now().Unix()}
		if c.flow == protocol.FlowPay {
			m["order_id"] = "o-" + qid
		}
		if err := f.handle(c.flow, f.sign(m)); err != nil {
			t.Fatal(err)
		}
		id := PaymentWorkflowID(c.flow, qid)
		if c.want == "" {
			in, ok := f.started(id)
			if !ok || in.Refused != "" {
				t.Fatalf("%s %s: not started to pay (%q)", c.flow, c.amount, in.Refused)
			}
			if want := f.cfg.ConfirmTimeout("BTC"); in.ConfirmTimeout != want {
				t.Errorf("confirm timeout %s, want the chain's %s", in.ConfirmTimeout, want)
			}
		} else if r := f.answer(qid); r.Status != protocol.StatusFailed || !strings.Contains(r.Error, c.want) {
			t.Errorf("%s %s: status %d error %q, want %q", c.flow, c.amount, r.Status, r.Error, c.want)
		}
		desc, err := f.tc.DescribeWorkflowExecution(context.Background(), id, "")
		if err != nil {
			t.Fatal(err)
		}
		if q := desc.GetExecutionConfig().GetTaskQueue().GetName(); q != f.cfg.Temporal.TaskQueue+".BTC" {
			t.Errorf("the payment runs on %q", q)
		}
	}
}
