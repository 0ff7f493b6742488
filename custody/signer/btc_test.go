package signer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/wire"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/config"
	"payflow/custody/signer"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// TestBTCAccount: the signer answers its BIP84 Bitcoin account of a
// network, serialised for that network, the same at every call and after
// a restart (it comes from the sealed mnemonic), another for another
// network; an unknown network is a bad request.
func TestBTCAccount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	simnet, _ := btc.Params("simnet")
	acct, err := e.client.BTCAccount(ctx, "simnet")
	require.NoError(t, err)
	require.Equal(t, "simnet", acct.Network)
	require.Equal(t, "m/84'/115'/0'", acct.Path)
	require.True(t, strings.HasPrefix(acct.XPub, "spub"), acct.XPub)
	a, err := btc.NewAccount(acct.XPub, simnet)
	require.NoError(t, err, "the worker can derive its addresses")
	addr, err := a.Address(0)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(addr, "sb1q"), addr)

	again, err := e.newSigner(nil).BTCAccount(ctx, "simnet")
	require.NoError(t, err)
	require.Equal(t, acct, again, "the same mnemonic, the same account")

	main, err := e.client.BTCAccount(ctx, "mainnet")
	require.NoError(t, err)
	require.Equal(t, "m/84'/0'/0'", main.Path)
	require.True(t, strings.HasPrefix(main.XPub, "xpub"))
	require.NotEqual(t, e.sig.AccountXPub(), main.XPub, "not the EVM account")

	_, err = e.client.BTCAccount(ctx, "moonnet")
	require.ErrorIs(t, err, signerapi.ErrBadRequest)
}

// wholeSpendEnv is e with a signer that signs for a simnet chain BTC, served on a
// socket of its own, and the ledger's wallets of that chain.
type wholeSpendEnv struct {
	*env
	client  *signerapi.Client
	account *btc.Account
	wallets *ledger.Wallets
	params  *chaincfg.Params
}

func newWholeSpendEnv(t *testing.T) *wholeSpendEnv {
	t.Helper()
	e := newEnv(t)
	s := e.newSigner(func(c *signer.Config) {
		c.BTCChains = map[string]config.BTCChain{"BTC": {Network: "simnet", Confirmations: 1, MaxFeeRate: 50,
			Native: config.NativeCoin{Symbol: "BTC", Decimals: btc.Decimals}}}
	})
	client := serve(t, s)
	params, _ := btc.Params("simnet")
	acct, err := s.BTCAccount(context.Background(), "simnet")
	require.NoError(t, err)
	account, err := btc.NewAccount(acct.XPub, params)
	require.NoError(t, err)
	return &wholeSpendEnv{env: e, client: client, account: account, wallets: ledger.NewWallets(e.db, nil), params: params}
}

// wallet registers the signer's child index as a managed wallet of kind.
func (b *wholeSpendEnv) wallet(kind ledger.WalletKind, index uint32) string {
	b.t.Helper()
	addr, err := b.account.Address(index)
	require.NoError(b.t, err)
	_, err = b.wallets.RegisterHD(context.Background(), "BTC", kind, fmt.Sprintf("test-%d", index), addr, index)
	require.NoError(b.t, err)
	return addr
}

// reserveBTC credits from with sats and reserves them for recipient.
func (b *wholeSpendEnv) reserveBTC(from string, sats int64, recipient string) string {
	b.t.Helper()
	ctx := context.Background()
	amt := decimal.New(sats, -btc.Decimals)
	_, err := b.led.Credit(ctx, ledger.CreditInput{Chain: "BTC", Address: from, Symbol: "BTC", Amount: amt,
		TxHash: stacktest.RandomID("credit"), Reference: "test"})
	require.NoError(b.t, err)
	key := stacktest.RandomID("sweep-")
	_, err = b.led.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: "BTC", Address: from, Symbol: "BTC", Amount: amt,
		WorkflowID: key, Recipient: recipient})
	require.NoError(b.t, err)
	return key
}

// wholeSpend is a PSBT spending coins of from (fake outpoints, whose
// witness UTXOs say what they hold) whole to one output paying to their
// worth less the fee at rate.
func (b *wholeSpendEnv) wholeSpend(from, to string, rate int64, coins ...int64) string {
	b.t.Helper()
	var in []btc.UTXO
	var sum int64
	for i, sats := range coins {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", from, i)))
		in = append(in, btc.UTXO{TxID: hex.EncodeToString(h[:]), Vout: uint32(i), Address: from, Sats: sats})
		sum += sats
	}
	out := sum - int64(btc.P2WPKHVSize(len(coins), 1))*rate
	built, err := btc.BuildPSBT(btc.Spend{Inputs: in, Outputs: []btc.Output{{Address: to, Sats: out}}, Change: from, FeeRate: rate}, b.params)
	require.NoError(b.t, err)
	require.Zero(b.t, built.Change)
	var buf bytes.Buffer
	require.NoError(b.t, built.Packet.Serialize(&buf))
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// TestBTCSignsAWholeSpendIntoAManagedWalletOnly: a sweep spends its
// reservation whole (no change, inputs worth exactly what is reserved, one
// output paying the collection wallet that less the fee) and is signed, as
// is its replacement paying the collection less at a higher fee; the same
// shape paying an outside address, whose reservation holds the amount it
// should receive, is refused.
func TestBTCSignsAWholeSpendIntoAManagedWalletOnly(t *testing.T) {
	b := newWholeSpendEnv(t)
	ctx := context.Background()
	dep := b.wallet(ledger.KindDeposit, 7)
	collection := b.wallet(ledger.KindCollection, 8)
	key := b.reserveBTC(dep, 60_000_000, collection)
	wf := stacktest.RandomID("sweep-wf-")

	req := signerapi.BTCSignRequest{Chain: "BTC", WorkflowID: wf, Step: "sweep-BTC", Reservation: key, From: dep,
		PSBT: b.wholeSpend(dep, collection, 2, 40_000_000, 20_000_000)}
	first, err := b.client.SignBTC(ctx, req)
	require.NoError(t, err, "a sweep whole into the collection wallet is signed")
	tx := new(wire.MsgTx)
	raw, err := hex.DecodeString(first.Raw)
	require.NoError(t, err)
	require.NoError(t, tx.Deserialize(bytes.NewReader(raw)))
	require.Len(t, tx.TxOut, 1)
	require.Len(t, tx.TxIn, 2)

	req.Attempt, req.PSBT = 1, b.wholeSpend(dep, collection, 5, 40_000_000, 20_000_000)
	_, err = b.client.SignBTC(ctx, req)
	require.NoError(t, err, "its replacement pays the collection less, the fee more")

	outside, err := btc.NewWIF(b.params)
	require.NoError(t, err)
	to, err := btc.WIFAddress(outside, b.params)
	require.NoError(t, err)
	key = b.reserveBTC(dep, 30_000_000, to)
	wf = stacktest.RandomID("pay-wf-")
	_, err = b.client.SignBTC(ctx, signerapi.BTCSignRequest{Chain: "BTC", WorkflowID: wf, Step: "pay", Reservation: key, From: dep,
		PSBT: b.wholeSpend(dep, to, 2, 30_000_000)})
	b.requireRefused(err, wf, "reservation_mismatch", "only a sweep into a wallet payflow holds the key of")
}
