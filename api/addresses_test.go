package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"payflow/api"
	"payflow/custody/addresses"
	"payflow/custody/hd"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// testAccountXPub is the account xpub (m/44'/60'/0') of BIP39's
// all-"abandon" test mnemonic, and testAddress0 its deposit address 0
// (m/44'/60'/0'/0/0), as every wallet of that test mnemonic shows it.
const (
	testAccountXPub = "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3yZdUsT8ddYM3PwnATt"
	testAddress0    = "0x9858effd232b4033e47d90003d41ec34ecaeda94"
)

// post sends POST path and returns the status and the JSON body.
func post(t *testing.T, srv *httptest.Server, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(srv.URL+path, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !json.Valid(body) {
		t.Fatalf("POST %s: Content-Type %q, body %s", path, ct, body)
	}
	return resp.StatusCode, body
}

// TestNewDepositAddress: POST /v1/addresses/{chain} answers 201 with the
// chain's next HD address and its index, each caller its own index, the
// address being the account's child and a deposit wallet of the ledger; an
// unknown chain or an overlong label is 400; without an xpub, 503 says so.
func TestNewDepositAddress(t *testing.T) {
	db := stacktest.TestDB(t, "api")
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	acct, err := hd.NewAccount(testAccountXPub)
	if err != nil {
		t.Fatal(err)
	}
	wallets := ledger.NewWallets(db, nil)
	alloc, err := addresses.New(testAccountXPub, wallets, []string{"ETH", "BSC"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewHandler(ledger.New(db), nil, api.WithAddresses(alloc)))
	t.Cleanup(srv.Close)

	status, body := post(t, srv, "/v1/addresses/ETH?label=shop-42")
	var first struct {
		Chain   string  `json:"chain"`
		Address string  `json:"address"`
		Index   *uint32 `json:"index"`
	}
	if err := json.Unmarshal(body, &first); err != nil || status != http.StatusCreated || first.Chain != "ETH" ||
		first.Index == nil || *first.Index != 0 || first.Address != testAddress0 {
		t.Fatalf("first address: %d %s: want 201 index 0 %s", status, body, testAddress0)
	}
	if wl, err := wallets.Get(ctx, "ETH", first.Address); err != nil || wl.Kind != ledger.KindDeposit || wl.Label != "shop-42" ||
		wl.KeyHolder != ledger.KeySigner {
		t.Fatalf("stored as %+v, %v", wl, err)
	}

	// Concurrent callers: distinct indexes, each the account's child.
	const n = 8
	var wg sync.WaitGroup
	got := make([][]byte, n)
	codes := make([]int, n)
	for c := range n {
		wg.Go(func() { codes[c], got[c] = post(t, srv, "/v1/addresses/ETH") })
	}
	wg.Wait()
	seen := map[uint32]bool{0: true}
	for c := range n {
		var a addresses.Address
		if err := json.Unmarshal(got[c], &a); err != nil || codes[c] != http.StatusCreated {
			t.Fatalf("caller %d: %d %s", c, codes[c], got[c])
		}
		want, _ := acct.DepositAddress(a.Index)
		if seen[a.Index] || a.Address != strings.ToLower(want.Hex()) {
			t.Fatalf("caller %d got %+v: index taken twice or not the account's child %s", c, a, want.Hex())
		}
		seen[a.Index] = true
	}

	if status, body := post(t, srv, "/v1/addresses/BSC"); status != http.StatusCreated || !strings.Contains(string(body), `"index":0`) {
		t.Fatalf("BSC's first: %d %s", status, body)
	}
	if status, body := post(t, srv, "/v1/addresses/TRON"); status != http.StatusBadRequest || !strings.Contains(string(body), "unknown chain") {
		t.Fatalf("unknown chain: %d %s", status, body)
	}
	if status, body := post(t, srv, "/v1/addresses/ETH?label="+strings.Repeat("x", 65)); status != http.StatusBadRequest ||
		!strings.Contains(string(body), "label") {
		t.Fatalf("overlong label: %d %s", status, body)
	}

	none, err := addresses.New("", wallets, []string{"ETH"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []http.Handler{api.NewHandler(ledger.New(db), nil, api.WithAddresses(none)), api.NewHandler(ledger.New(db), nil)} {
		s := httptest.NewServer(h)
		status, body := post(t, s, "/v1/addresses/ETH")
		s.Close()
		if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "custody.account_xpub") {
			t.Fatalf("without an xpub: %d %s", status, body)
		}
	}
}
