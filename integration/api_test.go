package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"payflow/internal/stacktest"
)

// TestAPIAsksForTheToken: every worker's /v1 routes answer 401 without the
// stack's bearer token (or with another) and answer with it; /healthz and
// /metrics stay open.
func TestAPIAsksForTheToken(t *testing.T) {
	st := stacktest.Load(t)
	if st.APIURL == "" || st.APIToken == "" {
		t.Fatal("stack.json has no api_url or api_token: run make up")
	}
	bases := []string{st.APIURL}
	for name, u := range st.MetricsURLs {
		if strings.HasPrefix(name, "worker-") {
			bases = append(bases, strings.TrimSuffix(u, "/metrics"))
		}
	}
	c := &http.Client{Timeout: 10 * time.Second}
	do := func(method, url, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, base := range bases {
		// A worker just restarted may not listen yet.
		waitFor(t, time.Minute, base+" to answer /healthz", func() bool {
			resp, err := c.Get(base + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return true
		})
		bal := base + "/v1/wallets/ETH/" + st.CollectionAddress + "/balances"
		if code, body := do("GET", bal, ""); code != http.StatusUnauthorized || !strings.Contains(body, "unauthorized") {
			t.Errorf("GET %s without the token: %d %s, want 401", bal, code, body)
		}
		if code, _ := do("GET", bal, st.APIToken+"x"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with another token: %d, want 401", bal, code)
		}
		if code, _ := do("POST", base+"/v1/addresses/ETH", ""); code != http.StatusUnauthorized {
			t.Errorf("POST /v1/addresses/ETH on %s without the token: %d, want 401 (nothing allocated)", base, code)
		}
		code, body := do("GET", bal, st.APIToken)
		var got struct {
			Address  string            `json:"address"`
			Balances []json.RawMessage `json:"balances"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || !strings.EqualFold(got.Address, st.CollectionAddress) ||
			len(got.Balances) == 0 {
			t.Errorf("GET %s with the token: %d %s", bal, code, body)
		}
		if code, body := do("GET", base+"/healthz", ""); code != http.StatusOK {
			t.Errorf("healthz on %s: %d %s, want 200 without a token", base, code, body)
		}
		if code, body := do("GET", base+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "payflow_") {
			t.Errorf("metrics on %s: %d, want 200 without a token", base, code)
		}
	}
}
