package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"payflow/api"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

var ctx = context.Background()

const (
	chainETH = "ETH"
	addr     = "0xabcdefabcdef0123456789abcdefabcdef012345"
)

// syncBuffer collects the handler's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	srv  *httptest.Server
	l    *ledger.Ledger
	logs *syncBuffer
	db   interface{ Close() error }
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := stacktest.TestDB(t, "api")
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	l := ledger.New(db)
	logs := &syncBuffer{}
	srv := httptest.NewServer(api.NewHandler(l, slog.New(slog.NewJSONHandler(logs, nil))))
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, l: l, logs: logs, db: db}
}

// get returns the status and the body, after checking that every answer is JSON.
func (f *fixture) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q, body %s", path, ct, body)
	}
	if !json.Valid(body) {
		t.Fatalf("GET %s: body is not JSON: %s", path, body)
	}
	return resp.StatusCode, body
}

func (f *fixture) getJSON(t *testing.T, path string, wantStatus int, v any) []byte {
	t.Helper()
	status, body := f.get(t, path)
	if status != wantStatus {
		t.Fatalf("GET %s: status %d, want %d; body %s", path, status, wantStatus, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return body
}

func keys(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func seed(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	for i := 0; i < 7; i++ {
		sym := "USDT"
		if i%3 == 0 {
			sym = "ETH"
		}
		if _, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: addr, Symbol: sym,
			Amount: d(fmt.Sprintf("%d.123456789012345678", i+1)), TxHash: fmt.Sprintf("0x%064x", i), LogIndex: 1,
			Reference: fmt.Sprintf("deposit-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: "api-q1", Chain: chainETH, Address: addr, Symbol: "USDT",
		Amount: d("1.5"), WorkflowID: "withdraw-api-q1"}); err != nil {
		t.Fatal(err)
	}
}

type historyPage struct {
	Entries []struct {
		ID        int64     `json:"id"`
		Op        string    `json:"op"`
		Symbol    string    `json:"symbol"`
		Amount    string    `json:"amount"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"entries"`
	NextCursor string `json:"next_cursor"`
}

func historyIDs(p historyPage) []int64 {
	var out []int64
	for _, e := range p.Entries {
		out = append(out, e.ID)
	}
	return out
}

func TestHistoryAndBalancesOverHTTP(t *testing.T) {
	f := newFixture(t)
	seed(t, f.l)
	all, err := f.l.History(ctx, ledger.HistoryQuery{Chain: chainETH, Address: addr})
	if err != nil || len(all.Entries) != 8 {
		t.Fatalf("ledger history: %d entries, %v", len(all.Entries), err)
	}
	var wantIDs []int64
	for _, e := range all.Entries {
		wantIDs = append(wantIDs, e.ID)
	}
	base := "/v1/wallets/ETH/" + addr + "/history"

	t.Run("healthz", func(t *testing.T) {
		body := f.getJSON(t, "/healthz", http.StatusOK, nil)
		if strings.TrimSpace(string(body)) != `{"ok":true}` {
			t.Fatalf("body %s", body)
		}
	})

	t.Run("shape", func(t *testing.T) {
		var raw struct {
			Entries []json.RawMessage `json:"entries"`
		}
		body := f.getJSON(t, base+"?limit=1", http.StatusOK, &raw)
		if got := keys(t, body); !slices.Equal(got, []string{"entries", "next_cursor"}) {
			t.Fatalf("page keys %v", got)
		}
		wantKeys := []string{"amount", "available_after", "available_before", "created_at", "held_after", "held_before",
			"id", "op", "reference", "symbol"}
		if got := keys(t, raw.Entries[0]); !slices.Equal(got, wantKeys) { // the newest is the reserve: no tx hash
			t.Fatalf("entry keys %v, want %v", got, wantKeys)
		}
		var e map[string]any
		_ = json.Unmarshal(raw.Entries[0], &e)
		if e["op"] != "reserve" || e["amount"] != "0" || e["held_after"] != "1.5" {
			t.Fatalf("newest entry %s", raw.Entries[0])
		}
		// Amounts are exact decimal strings.
		var p struct {
			Entries []map[string]any `json:"entries"`
		}
		f.getJSON(t, base+"?symbol=USDT&limit=1000", http.StatusOK, &p)
		last := p.Entries[len(p.Entries)-1]
		if last["amount"] != "2.123456789012345678" || last["tx_hash"] != fmt.Sprintf("0x%064x", 1) || last["op"] != "credit" {
			t.Fatalf("oldest USDT entry %v", last)
		}
	})

	t.Run("pages through the cursor", func(t *testing.T) {
		var got []int64
		cursor, pages := "", 0
		for {
			pages++
			var p historyPage
			f.getJSON(t, base+"?limit=3&cursor="+url.QueryEscape(cursor), http.StatusOK, &p)
			got = append(got, historyIDs(p)...)
			if p.NextCursor == "" {
				break
			}
			if pages > 10 {
				t.Fatal("cursor chain does not end")
			}
			cursor = p.NextCursor
		}
		if !slices.Equal(got, wantIDs) || pages != 3 {
			t.Fatalf("paged ids %v in %d pages, want %v in 3", got, pages, wantIDs)
		}
	})

	t.Run("filters", func(t *testing.T) {
		var p historyPage
		// Upper-case address in the path, symbol filter.
		f.getJSON(t, "/v1/wallets/ETH/0x"+strings.ToUpper(addr[2:])+"/history?symbol=ETH", http.StatusOK, &p)
		if len(p.Entries) != 3 || p.Entries[0].Symbol != "ETH" || p.NextCursor != "" {
			t.Fatalf("ETH entries %+v", p)
		}
		future := time.Now().Add(time.Hour)
		for _, tc := range []struct {
			query string
			n     int
		}{
			{fmt.Sprintf("from=%d", future.Unix()), 0},
			{"to=2001-01-01T00:00:00Z", 0},
			{fmt.Sprintf("from=%d&to=%s", time.Now().Add(-time.Hour).Unix(), url.QueryEscape(future.Format(time.RFC3339Nano))), 8},
			{"to=" + url.QueryEscape(all.Entries[0].CreatedAt.Format(time.RFC3339Nano)), 7}, // [.., newest) excludes the newest
		} {
			body := f.getJSON(t, base+"?"+tc.query, http.StatusOK, &p)
			if len(p.Entries) != tc.n {
				t.Errorf("%s: %d entries, want %d", tc.query, len(p.Entries), tc.n)
			}
			if tc.n == 0 && !strings.Contains(string(body), `"entries":[]`) {
				t.Errorf("%s: empty page is not an empty list: %s", tc.query, body)
			}
		}
	})

	t.Run("balances", func(t *testing.T) {
		var got struct {
			Chain    string `json:"chain"`
			Address  string `json:"address"`
			Balances []struct {
				Symbol    string `json:"symbol"`
				Available string `json:"available"`
				Held      string `json:"held"`
			} `json:"balances"`
		}
		f.getJSON(t, "/v1/wallets/ETH/0x"+strings.ToUpper(addr[2:])+"/balances", http.StatusOK, &got)
		// ETH: 1+4+7 (.123456789012345678 each); USDT: 2+3+5+6 minus 1.5 held.
		if got.Chain != chainETH || got.Address != addr || len(got.Balances) != 2 ||
			got.Balances[0].Symbol != "ETH" || got.Balances[0].Available != "12.370370367037037034" || got.Balances[0].Held != "0" ||
			got.Balances[1].Symbol != "USDT" || got.Balances[1].Available != "14.993827156049382712" || got.Balances[1].Held != "1.5" {
			t.Fatalf("balances %+v", got)
		}
		body := f.getJSON(t, "/v1/wallets/ETH/0x3333333333333333333333333333333333333333/balances", http.StatusOK, nil)
		if !strings.Contains(string(body), `"balances":[]`) {
			t.Fatalf("unknown wallet: %s", body)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, tc := range []struct{ path, mention string }{
			{"/v1/wallets/ETH/0x1234/history", "address"},
			{"/v1/wallets/ETH/abcdefabcdef0123456789abcdefabcdef01234567/history", "address"},
			{"/v1/wallets/ETH/0xZZcdefabcdef0123456789abcdefabcdef012345/history", "address"},
			{"/v1/wallets/ETH/0xZZcdefabcdef0123456789abcdefabcdef012345/balances", "address"},
			{"/v1/wallets/" + strings.Repeat("X", 17) + "/" + addr + "/history", "chain"},
			{base + "?limit=0", "limit"},
			{base + "?limit=1001", "limit"},
			{base + "?limit=ten", "limit"},
			{base + "?from=yesterday", "from"},
			{base + "?to=2026-13-01T00:00:00Z", "to"},
			{base + "?from=-5", "from"},
			{base + "?from=2000&to=1000", "to"},
			{base + "?cursor=garbage", "cursor"},
			{"/v1/reconciliations", "chain"},
			{"/v1/reconciliations?chain=ETH&status=pending", "status"},
			{"/v1/reconciliations?chain=ETH&address=0x12", "address"},
			{"/v1/reconciliations?chain=ETH&cursor=bm90IGEgY3Vyc29y", "cursor"},
		} {
			var e struct {
				Error string `json:"error"`
			}
			f.getJSON(t, tc.path, http.StatusBadRequest, &e)
			if !strings.Contains(e.Error, tc.mention) {
				t.Errorf("GET %s: error %q does not mention %s", tc.path, e.Error, tc.mention)
			}
		}
		// A history cursor is refused by the reconciliations listing.
		var p historyPage
		f.getJSON(t, base+"?limit=1", http.StatusOK, &p)
		f.getJSON(t, "/v1/reconciliations?chain=ETH&cursor="+url.QueryEscape(p.NextCursor), http.StatusBadRequest, nil)
	})

	t.Run("method not allowed", func(t *testing.T) {
		resp, err := http.Post(f.srv.URL+"/healthz", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("POST /healthz: %d", resp.StatusCode)
		}
	})
}

func TestReconciliationsOverHTTP(t *testing.T) {
	f := newFixture(t)
	for i, status := range []ledger.ReconStatus{ledger.ReconMatched, ledger.ReconMismatch, ledger.ReconMatched, ledger.ReconMismatch, ledger.ReconMatched} {
		r := ledger.Reconciliation{RunID: fmt.Sprintf("run-%d", i), Chain: chainETH, Address: addr, Symbol: "USDT",
			BlockNumber: uint64(100 + i), BlockHash: fmt.Sprintf("0x%064x", 100+i), LedgerTotal: d("10"), ChainBalance: d("10"), Status: status}
		if status == ledger.ReconMismatch {
			r.ChainBalance = d("12.5")
			r.Unmatched = []ledger.UnmatchedTransfer{{Side: ledger.SideChainOnly, TxHash: fmt.Sprintf("0x%064x", i), LogIndex: 3,
				BlockNumber: uint64(99 + i), Amount: d("2.5")}}
		}
		if err := f.l.RecordReconciliation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	type reconPage struct {
		Reconciliations []map[string]any `json:"reconciliations"`
		NextCursor      string           `json:"next_cursor"`
	}
	var got []string
	cursor := ""
	for pages := 1; ; pages++ {
		var p reconPage
		f.getJSON(t, "/v1/reconciliations?chain=ETH&limit=2&cursor="+url.QueryEscape(cursor), http.StatusOK, &p)
		for _, r := range p.Reconciliations {
			got = append(got, r["run_id"].(string))
		}
		if p.NextCursor == "" {
			if pages != 3 {
				t.Fatalf("%d pages, want 3", pages)
			}
			break
		}
		cursor = p.NextCursor
	}
	if want := []string{"run-4", "run-3", "run-2", "run-1", "run-0"}; !slices.Equal(got, want) {
		t.Fatalf("run ids %v, want %v", got, want)
	}

	var p reconPage
	f.getJSON(t, "/v1/reconciliations?chain=ETH&status=mismatch&address=0x"+strings.ToUpper(addr[2:]), http.StatusOK, &p)
	if len(p.Reconciliations) != 2 || p.Reconciliations[0]["run_id"] != "run-3" || p.Reconciliations[1]["run_id"] != "run-1" {
		t.Fatalf("mismatches %v", p.Reconciliations)
	}
	r := p.Reconciliations[0]
	wantKeys := []string{"address", "block_hash", "block_number", "chain", "chain_balance", "created_at", "difference", "id",
		"ledger_total", "run_id", "status", "symbol", "unmatched"}
	raw, _ := json.Marshal(r)
	if got := keys(t, raw); !slices.Equal(got, wantKeys) {
		t.Fatalf("keys %v, want %v", got, wantKeys)
	}
	if r["difference"] != "2.5" || r["chain_balance"] != "12.5" || r["status"] != "mismatch" || r["block_number"] != float64(103) {
		t.Fatalf("mismatch row %v", r)
	}
	u := r["unmatched"].([]any)[0].(map[string]any)
	if u["side"] != "chain_only" || u["amount"] != "2.5" || u["tx_hash"] != fmt.Sprintf("0x%064x", 3) {
		t.Fatalf("unmatched %v", u)
	}
	body := f.getJSON(t, "/v1/reconciliations?chain=BSC", http.StatusOK, nil)
	if !strings.Contains(string(body), `"reconciliations":[]`) {
		t.Fatalf("other chain: %s", body)
	}
}

// TestDatabaseErrorsStayInternal: with the database gone, health says so and
// a query answers a bare 500 while the cause goes to the log.
func TestDatabaseErrorsStayInternal(t *testing.T) {
	f := newFixture(t)
	f.getJSON(t, "/healthz", http.StatusOK, nil)
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	body := f.getJSON(t, "/healthz", http.StatusServiceUnavailable, nil)
	if strings.Contains(string(body), "sql") {
		t.Fatalf("health body leaks: %s", body)
	}
	for _, path := range []string{
		"/v1/wallets/ETH/" + addr + "/history",
		"/v1/wallets/ETH/" + addr + "/balances",
		"/v1/reconciliations?chain=ETH",
	} {
		body := f.getJSON(t, path, http.StatusInternalServerError, nil)
		if strings.TrimSpace(string(body)) != `{"error":"internal error"}` {
			t.Fatalf("GET %s: body %s", path, body)
		}
	}
	if logs := f.logs.String(); !strings.Contains(logs, "sql: database is closed") || !strings.Contains(logs, `"address":"`+addr+`"`) {
		t.Fatalf("the cause was not logged: %s", logs)
	}
}
