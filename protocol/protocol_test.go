package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

type reg struct{}

func (reg) TokenDecimals(chain, symbol string) (int32, bool, bool) {
	if chain != "ETH" {
		return 0, false, false
	}
	if symbol == "USDT" {
		return 6, true, true
	}
	return 0, true, false
}

func TestCanonicalKeepsNumberText(t *testing.T) {
	body := `{"queue_id":"w1","amount":50.0,"chain":"ETH","timestamp":1758610297,"sign":"x","symbol":"USDT"}`
	var f map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &f); err != nil {
		t.Fatal(err)
	}
	got, err := Canonical(f)
	if err != nil {
		t.Fatal(err)
	}
	want := "amount=50.0&chain=ETH&queue_id=w1&symbol=USDT&timestamp=1758610297"
	if got != want {
		t.Fatalf("canonical = %q, want %q", got, want)
	}
}

func TestSignatureIsHMACSHA256Hex(t *testing.T) {
	// Known vector: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
	got := Signature("key", "The quick brown fox jumps over the lazy dog")
	if got != "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8" {
		t.Fatalf("signature = %s", got)
	}
}

func TestAmountJSONIsExactNumber(t *testing.T) {
	for _, s := range []string{"100.5", "0.000001", "123456789012345678901234567890.123456789012345678"} {
		b, err := json.Marshal(PaymentResponse{Amount: MustAmount(s)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"amount":`+s+`,`) {
			t.Errorf("%s marshalled as %s", s, b)
		}
		var back PaymentResponse
		if err := json.Unmarshal(b, &back); err != nil || back.Amount.String() != MustAmount(s).String() {
			t.Errorf("%s did not round-trip: %v %s", s, err, back.Amount.String())
		}
	}
}

func TestOpenAndValidatePayment(t *testing.T) {
	const secret = "s3cret"
	now := time.Unix(1_758_610_297, 0)
	v := Verifier{Secret: secret, Skew: 300 * time.Second, Now: func() time.Time { return now }}
	good := `"queue_id":"w1","from_address":"0x1111111111111111111111111111111111111111","to_address":"0x2222222222222222222222222222222222222222","chain":"ETH","symbol":"USDT"`
	sign := func(body string) []byte {
		b, err := SignBody(secret, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		body []byte
		flow Flow
		want error
	}{
		{"ok", sign(`{` + good + `,"amount":50.0,"timestamp":1758610297}`), FlowWithdraw, nil},
		{"pay needs order_id", sign(`{` + good + `,"amount":5,"timestamp":1758610297}`), FlowPay, ErrMissingField},
		{"pay ok", sign(`{` + good + `,"amount":5,"order_id":"o1","timestamp":1758610297}`), FlowPay, nil},
		{"bad json", []byte(`{"queue_id":`), FlowWithdraw, ErrBadJSON},
		{"not an object", []byte(`[1,2]`), FlowWithdraw, ErrBadJSON},
		{"no sign", []byte(`{` + good + `,"amount":5,"timestamp":1758610297}`), FlowWithdraw, ErrMissingField},
		{"bad sign", []byte(`{` + good + `,"amount":5,"timestamp":1758610297,"sign":"abcd"}`), FlowWithdraw, ErrBadSignature},
		{"amount text changed after signing", []byte(strings.Replace(string(sign(`{`+good+`,"amount":50.0,"timestamp":1758610297}`)), "50.0", "50", 1)), FlowWithdraw, ErrBadSignature},
		{"stale", sign(`{` + good + `,"amount":5,"timestamp":1758609000}`), FlowWithdraw, ErrStaleTimestamp},
		{"future", sign(`{` + good + `,"amount":5,"timestamp":1758611000}`), FlowWithdraw, ErrStaleTimestamp},
		{"unknown chain", sign(strings.Replace(`{`+good+`,"amount":5,"timestamp":1758610297}`, `"ETH"`, `"DOGE"`, 1)), FlowWithdraw, ErrUnknownChain},
		{"unknown symbol", sign(strings.Replace(`{`+good+`,"amount":5,"timestamp":1758610297}`, `"USDT"`, `"XYZ"`, 1)), FlowWithdraw, ErrUnknownSymbol},
		{"bad address", sign(strings.Replace(`{`+good+`,"amount":5,"timestamp":1758610297}`, `0x2222222222222222222222222222222222222222`, `0x22`, 1)), FlowWithdraw, ErrBadAddress},
		{"zero amount", sign(`{` + good + `,"amount":0,"timestamp":1758610297}`), FlowWithdraw, ErrBadAmount},
		{"negative amount", sign(`{` + good + `,"amount":-1,"timestamp":1758610297}`), FlowWithdraw, ErrBadAmount},
		{"too many decimals", sign(`{` + good + `,"amount":1.0000001,"timestamp":1758610297}`), FlowWithdraw, ErrBadAmount},
		{"trailing zeros are fine", sign(`{` + good + `,"amount":1.100000000,"timestamp":1758610297}`), FlowWithdraw, nil},
		{"amount not a number", sign(`{` + good + `,"amount":"ten","timestamp":1758610297}`), FlowWithdraw, ErrBadAmount},
		{"queue_id not a string", sign(strings.Replace(`{`+good+`,"amount":5,"timestamp":1758610297}`, `"w1"`, `17`, 1)), FlowWithdraw, ErrBadField},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, err := v.Open(c.flow, c.body)
			if err == nil {
				_, err = env.Payment(c.flow, reg{})
			}
			if c.want == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) || !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error = %v, want %v", err, c.want)
			}
		})
	}
}

func TestPaymentNormalisesAndDigests(t *testing.T) {
	v := Verifier{Secret: "k", Skew: time.Hour}
	body, _ := SignBody("k", []byte(`{"queue_id":"q","from_address":"0xAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","to_address":"0x2222222222222222222222222222222222222222","amount":50.0,"chain":"eth","symbol":"usdt","timestamp":`+itoa(time.Now().Unix())+`}`))
	env, err := v.Open(FlowWithdraw, body)
	if err != nil {
		t.Fatal(err)
	}
	r, err := env.Payment(FlowWithdraw, reg{})
	if err != nil {
		t.Fatal(err)
	}
	if r.FromAddress != "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" || r.Chain != "ETH" || r.Symbol != "USDT" {
		t.Fatalf("not normalised: %+v", r)
	}
	r2 := r
	r2.Amount = MustAmount("50")
	r2.Timestamp++
	if r.Digest() != r2.Digest() {
		t.Error("digest depends on number formatting or timestamp")
	}
	r2.ToAddress = "0x3333333333333333333333333333333333333333"
	if r.Digest() == r2.Digest() {
		t.Error("digest ignores to_address")
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// btcReg serves ETH (0x addresses) and BTC, whose addresses it checks as a
// Bitcoin chain's (here: anything starting "bc1q", lowercased).
type btcReg struct{ reg }

func (btcReg) TokenDecimals(chain, symbol string) (int32, bool, bool) {
	if chain == "BTC" {
		return 8, true, symbol == "BTC"
	}
	return reg{}.TokenDecimals(chain, symbol)
}

func (btcReg) CanonicalAddress(chain, s string) (string, string, bool) {
	if chain == "BTC" {
		return strings.ToLower(s), "a bech32 address", strings.HasPrefix(strings.ToLower(s), "bc1q")
	}
	if !IsAddress(s) {
		return "", "a 0x address", false
	}
	return strings.ToLower(s), "", true
}

// TestAddressCheckedByTheChainsFamily: a Registry that is ChainAddresses
// checks each request's addresses as its chain's; amounts follow the
// asset's decimals (8 for BTC).
func TestAddressCheckedByTheChainsFamily(t *testing.T) {
	open := func(fields string) Envelope {
		var env Envelope
		if err := json.Unmarshal([]byte(fields), &env.Fields); err != nil {
			t.Fatal(err)
		}
		return env
	}
	topup, err := open(`{"chain":"btc","symbol":"btc","address":"BC1QXYZ"}`).Topup(btcReg{})
	if err != nil || topup.Address != "bc1qxyz" || topup.Chain != "BTC" {
		t.Fatalf("BTC topup: %+v %v", topup, err)
	}
	for _, c := range []struct{ body, want string }{
		{`{"chain":"BTC","symbol":"BTC","address":"0x1111111111111111111111111111111111111111"}`,
			`address "0x1111111111111111111111111111111111111111" is not a bech32 address`},
		{`{"chain":"ETH","symbol":"USDT","address":"bc1qxyz"}`, `address "bc1qxyz" is not a 0x address`},
	} {
		_, err := open(c.body).Topup(btcReg{})
		if !errors.Is(err, ErrBadAddress) || !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.body, err, c.want)
		}
	}
	pay := `{"queue_id":"q","from_address":"bc1qa","to_address":"bc1qb","chain":"BTC","symbol":"BTC","amount":%s}`
	if r, err := open(strings.Replace(pay, "%s", "0.12345678", 1)).Payment(FlowWithdraw, btcReg{}); err != nil || r.ToAddress != "bc1qb" {
		t.Errorf("8 decimals: %+v %v", r, err)
	}
	if _, err := open(strings.Replace(pay, "%s", "0.123456789", 1)).Payment(FlowWithdraw, btcReg{}); !errors.Is(err, ErrBadAmount) {
		t.Errorf("9 decimals: %v", err)
	}
}
