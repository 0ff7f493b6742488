package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestFieldLimits: queue_id is 1–128 characters (runes, not bytes) of any
// text but control characters; order_id at most 128 with the same rule.
// The seed's 8 KB order_id is refused in business terms.
func TestFieldLimits(t *testing.T) {
	const secret = "k"
	v := Verifier{Secret: secret, Skew: time.Hour}
	unicode128 := string([]rune(strings.Repeat("支付-ünïcødé-", 12))[:128])
	if utf8.RuneCountInString(unicode128) != 128 || len(unicode128) <= 128 {
		t.Fatalf("bad fixture: %d runes, %d bytes", utf8.RuneCountInString(unicode128), len(unicode128))
	}
	mixed := "支付-ünïcødé-" + strings.Repeat("x", 100)
	pay := func(queueID, orderID string) []byte {
		b, _ := json.Marshal(map[string]any{
			"queue_id": queueID, "order_id": orderID, "amount": json.Number("1"), "chain": "ETH", "symbol": "USDT",
			"from_address": "0x1111111111111111111111111111111111111111",
			"to_address":   "0x2222222222222222222222222222222222222222", "timestamp": time.Now().Unix(),
		})
		s, err := SignBody(secret, b)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name, queueID, orderID, wantText string
	}{
		{"128 non-ASCII characters", unicode128, "o", ""},
		{"non-ASCII mixed", mixed, "订单-ü", ""},
		{"one character", "q", "o", ""},
		{"spaces inside", "a b", "o c", ""},
		{"order_id 128 characters", "q", unicode128, ""},
		{"queue_id 129 characters", unicode128 + "x", "o", "queue_id must be 1 to 128 characters without control characters"},
		{"queue_id empty", "", "o", "queue_id"},
		{"queue_id newline", "a\nb", "o", "queue_id must be 1 to 128 characters without control characters"},
		{"queue_id NUL", "a\x00b", "o", "queue_id must be 1 to 128 characters without control characters"},
		{"order_id 129 characters", "q", unicode128 + "x", "order_id must be at most 128 characters without control characters"},
		{"order_id 8 KB", "q", strings.Repeat("o", 8192), "order_id must be at most 128 characters without control characters"},
		{"order_id tab", "q", "a\tb", "order_id must be at most 128 characters without control characters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, err := v.Open(FlowPay, pay(c.queueID, c.orderID))
			var r PaymentRequest
			if err == nil {
				r, err = env.Payment(FlowPay, reg{})
			}
			if c.wantText == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if r.QueueID != c.queueID || r.OrderID != c.orderID {
					t.Fatalf("ids changed: %q %q", r.QueueID, r.OrderID)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), c.wantText) {
				t.Fatalf("error = %v, want one containing %q", err, c.wantText)
			}
		})
	}
}
