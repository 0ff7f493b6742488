package integration

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// erc20Transfer is the call data of transfer(to, units).
func erc20Transfer(to string, units *big.Int) string {
	return fmt.Sprintf("0xa9059cbb%064s%064x", strings.TrimPrefix(strings.ToLower(to), "0x"), units)
}

// TestSignerRefusesWhatNoReservationHolds talks to the stack's payflow-signer
// over its socket, as a compromised worker would: a transfer that no held
// reservation pays for exactly (another recipient, another amount, another
// wallet, none at all, or a reservation no longer held) is refused, and each
// refusal is in the signer's audit trail.
func TestSignerRefusesWhatNoReservationHolds(t *testing.T) {
	st := stacktest.Load(t)
	if st.SignerSocket == "" {
		t.Fatal("stack.json names no signer_socket")
	}
	ctx := context.Background()
	db := st.DB(t)
	led := ledger.NewUnbatched(db)
	sc := signerapi.NewClient(st.SignerSocket)
	hot := hotWallet(t, st)
	usdt := st.Tokens["USDT"].Address
	recipient := stacktest.RandomAddress()
	key := stacktest.RandomID("it-signer-refuse-")
	if _, err := led.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: "ETH", Address: hot, Symbol: "USDT",
		Amount: decimal.RequireFromString("1.5"), WorkflowID: key, Recipient: recipient}); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			if _, err := led.Release(ctx, key); err != nil {
				t.Error(err)
			}
			released = true
		}
	}
	t.Cleanup(release)

	units := big.NewInt(1_500_000)
	req := func(step, reservation, from, to string, units *big.Int) signerapi.SignRequest {
		return signerapi.SignRequest{Chain: "ETH", ChainID: st.ChainID, WorkflowID: key, Step: step, Reservation: reservation,
			From: from, Tx: signerapi.UnsignedTx{Nonce: 1 << 40, To: usdt, Value: "0", Data: erc20Transfer(to, units),
				Gas: 100_000, TipCap: "1000000000", FeeCap: "2000000000"}}
	}
	other := stacktest.RandomAddress()
	cases := []struct {
		name string
		req  signerapi.SignRequest
	}{
		{"another recipient", req("r1", key, hot, other, units)},
		{"another amount", req("r2", key, hot, recipient, big.NewInt(1_500_001))},
		{"another wallet", req("r3", key, walletByLabel(t, db, "user-1"), recipient, units)},
		{"no reservation", req("r4", stacktest.RandomID("it-none-"), hot, recipient, units)},
		{"no reservation named", req("r5", "", hot, recipient, units)},
	}
	for _, c := range cases {
		_, err := sc.Sign(ctx, c.req)
		if !errors.Is(err, signerapi.ErrRefused) {
			t.Errorf("%s: signer answered %v, want a refusal", c.name, err)
		}
	}
	release()
	if _, err := sc.Sign(ctx, req("r6", key, hot, recipient, units)); !errors.Is(err, signerapi.ErrRefused) {
		t.Errorf("released reservation: signer answered %v, want a refusal", err)
	}

	var refused int
	if err := db.QueryRow("SELECT COUNT(*) FROM signer_audit WHERE workflow_id=? AND verdict='refused'", key).Scan(&refused); err != nil {
		t.Fatal(err)
	}
	if refused != len(cases)+1 {
		t.Errorf("%d refusals audited, want %d", refused, len(cases)+1)
	}
	var signed int
	if err := db.QueryRow("SELECT COUNT(*) FROM signer_steps WHERE workflow_id=?", key).Scan(&signed); err != nil {
		t.Fatal(err)
	}
	if signed != 0 {
		t.Errorf("%d steps signed, want none", signed)
	}
}
