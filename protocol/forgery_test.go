package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestForgedPayIsRefused reproduces a reported forgery: a
// business signs a pay whose order_id carries "&queue_id=…&to_address=…&zz=";
// the same signature then matches a forged pay with another queue_id and
// recipient, the tail of the honest canonical string carried in an unknown
// field zz. Both canonical strings are identical, so only the field rules
// (unknown field, '&' or '=' in a value) can tell them apart.
func TestForgedPayIsRefused(t *testing.T) {
	const secret = "s3cret"
	now := time.Unix(1_758_610_297, 0)
	v := Verifier{Secret: secret, Skew: 300 * time.Second, Now: func() time.Time { return now }}
	const (
		from  = "0x1111111111111111111111111111111111111111"
		honTo = "0x2222222222222222222222222222222222222222"
		evil  = "0x9999999999999999999999999999999999999999"
		ts    = "1758610297"
	)
	honest := map[string]any{
		"queue_id": "q-honest", "from_address": from, "to_address": honTo, "amount": json.Number("1"),
		"chain": "ETH", "symbol": "USDT", "timestamp": json.Number(ts),
		"order_id": "o1&queue_id=q-forged&symbol=USDT&timestamp=" + ts + "&to_address=" + evil + "&zz=",
	}
	hb, _ := json.Marshal(honest)
	signedHonest, err := SignBody(secret, hb)
	if err != nil {
		t.Fatal(err)
	}
	var hf map[string]json.RawMessage
	_ = json.Unmarshal(signedHonest, &hf)
	var sign string
	_ = json.Unmarshal(hf["sign"], &sign)

	forged := map[string]any{
		"queue_id": "q-forged", "from_address": from, "to_address": evil, "amount": json.Number("1"),
		"chain": "ETH", "symbol": "USDT", "timestamp": json.Number(ts), "order_id": "o1",
		"zz":   "&queue_id=q-honest&symbol=USDT&timestamp=" + ts + "&to_address=" + honTo,
		"sign": sign,
	}
	fb, _ := json.Marshal(forged)
	var ff map[string]json.RawMessage
	_ = json.Unmarshal(fb, &ff)
	hc, _ := Canonical(hf)
	fc, _ := Canonical(ff)
	if hc != fc {
		t.Fatalf("the forgery no longer reproduces: canonical strings differ\n%s\n%s", hc, fc)
	}

	env, err := v.Open(FlowPay, fb)
	if err == nil {
		req, perr := env.Payment(FlowPay, reg{})
		t.Fatalf("forged pay accepted (payment error %v): queue_id %s pays %s", perr, req.QueueID, req.ToAddress)
	}
	if !errors.Is(err, ErrInvalidRequest) || !errors.Is(err, ErrUnknownField) {
		t.Fatalf("forged pay refused for the wrong reason: %v", err)
	}
	if !strings.Contains(err.Error(), "zz") {
		t.Errorf("error %q does not name the unknown field", err)
	}
	// The honest request is refused too: its order_id carries '&' and '='.
	if _, err := v.Open(FlowPay, signedHonest); !errors.Is(err, ErrReservedChar) {
		t.Fatalf("order_id with '&' and '=' accepted or refused for the wrong reason: %v", err)
	}
}

// TestShapeIsCheckedBeforeSignature: unknown fields, '&' or '=' in a string
// and object or array values are refused before the signature or the
// timestamp are looked at, for every flow; a request of one flow sent to
// another flow's queue is refused as carrying an unknown field.
func TestShapeIsCheckedBeforeSignature(t *testing.T) {
	v := Verifier{Secret: "k", Skew: time.Minute, Now: func() time.Time { return time.Unix(0, 0) }}
	const pay = `{"queue_id":"q","order_id":"o","from_address":"0x1111111111111111111111111111111111111111","to_address":"0x2222222222222222222222222222222222222222","amount":1,"chain":"ETH","symbol":"USDT","timestamp":5,"sign":"bad"`
	const topup = `{"address":"0x1111111111111111111111111111111111111111","chain":"ETH","symbol":"USDT","timestamp":5,"sign":"bad"`
	cases := []struct {
		name string
		flow Flow
		body string
		want error
	}{
		{"pay: extra field", FlowPay, pay + `,"memo":"x"}`, ErrUnknownField},
		{"pay: extra numeric field", FlowPay, pay + `,"fee":0}`, ErrUnknownField},
		{"pay sent as a withdraw", FlowWithdraw, pay + `}`, ErrUnknownField},
		{"topup: extra field", FlowTopup, topup + `,"queue_id":"q"}`, ErrUnknownField},
		{"topup sent as a pay", FlowPay, topup + `}`, ErrUnknownField},
		{"ampersand", FlowPay, strings.Replace(pay, `"o"`, `"a&b"`, 1) + `}`, ErrReservedChar},
		{"equals", FlowPay, strings.Replace(pay, `"q"`, `"a=b"`, 1) + `}`, ErrReservedChar},
		{"escaped ampersand", FlowPay, strings.Replace(pay, `"o"`, `"a\u0026b"`, 1) + `}`, ErrReservedChar},
		{"object value", FlowPay, strings.Replace(pay, `"o"`, `{"a":"&x="}`, 1) + `}`, ErrBadField},
		{"array value", FlowPay, strings.Replace(pay, `1,"chain"`, `[1],"chain"`, 1) + `}`, ErrBadField},
		{"only a bad signature", FlowPay, pay + `}`, ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Open(c.flow, []byte(c.body))
			if !errors.Is(err, c.want) || !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error = %v, want %v", err, c.want)
			}
		})
	}
}
