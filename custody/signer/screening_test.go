package signer_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/custody/signer"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/risk/denylist"
)

// TestRefusesAListedRecipientUnlessItReturnsItsHeldDeposit: a first attempt
// to a listed address is refused and audited (recipient_blocked), whatever
// the reservation says; the return of a held deposit to its sender, which
// spends that deposit's hold, is signed.
func TestRefusesAListedRecipientUnlessItReturnsItsHeldDeposit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	listed, clean := stacktest.RandomAddress(), stacktest.RandomAddress()
	path := filepath.Join(t.TempDir(), "deny.txt")
	require.NoError(t, os.WriteFile(path, []byte(listed+" OFAC-SDN 2026-11-30\n"), 0o644))
	screen, err := denylist.Open(path, nil)
	require.NoError(t, err)
	e.sig = e.newSigner(func(c *signer.Config) { c.DenyList = screen })
	from := e.newKey(signerapi.BackendEnvelope)

	res := e.reserve(from, "USDT", "5", listed)
	_, err = e.sig.Sign(ctx, request(res, "transfer", 0, res, from, e.tokenTx(0, listed, "5")))
	e.requireRefused(err, res, "recipient_blocked", "recipient is blocked: "+listed+" is on the deny list (OFAC-SDN 2026-11-30)")
	require.Contains(t, e.logs.String(), "recipient_blocked")

	// A clean recipient is signed as ever.
	ok := e.reserve(from, "USDT", "5", clean)
	_, err = e.sig.Sign(ctx, request(ok, "transfer", 0, ok, from, e.tokenTx(0, clean, "5")))
	require.NoError(t, err)

	// A deposit from the listed sender, credited held: its return to the
	// sender spends the hold and is signed; to anyone else it is not.
	tx := common.BytesToHash([]byte(stacktest.RandomID("held"))).Hex()
	_, err = e.led.CreditHeld(ctx, ledger.HeldCredit{CreditInput: ledger.CreditInput{Chain: chainName, Address: from,
		Symbol: "ETH", Amount: decimal.RequireFromString("0.5"), TxHash: tx, LogIndex: 0, Reference: "deposit"}, Sender: listed})
	require.NoError(t, err)
	hold := ledger.HoldKey(chainName, tx, 0)
	ret := stacktest.RandomID("deposit-return-")
	resp, err := e.sig.Sign(ctx, request(ret, "return", 0, hold, from, nativeTx(1, listed, "0.5")))
	require.NoError(t, err)
	signed, sender := decodeSigned(t, resp.Raw)
	require.Equal(t, from, sender)
	require.Equal(t, common.HexToAddress(listed), *signed.To())

	// A reservation naming a listed recipient that is no hold is refused.
	other := e.reserve(from, "ETH", "0.5", listed)
	_, err = e.sig.Sign(ctx, request(other, "transfer", 0, other, from, nativeTx(2, listed, "0.5")))
	e.requireRefused(err, other, "recipient_blocked", "is on the deny list")
}
