package signer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/audit"
	"payflow/chain/btc"
	"payflow/config"
	"payflow/custody/signer"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/risk/denylist"
)

// The test's Bitcoin chain: regtest, whose bech32 addresses the deny list
// reads.
const (
	btcChain   = "BTC"
	btcNetwork = "regtest"
)

// btcEnv is env with a signer that also signs for a regtest Bitcoin chain
// whose coin waits for approval above 1 BTC, with a maximum fee rate of 50
// sat/vB, served on its own socket; the hot wallet is child 0 of the
// signer's BIP84 account, registered in the ledger.
type btcEnv struct {
	*env
	sig     *signer.Signer
	client  *signerapi.Client
	params  *chaincfg.Params
	account *btc.Account
	wallets *ledger.Wallets
	hot     string
}

func newBTCEnv(t *testing.T, change ...func(*signer.Config)) *btcEnv {
	e := newEnv(t)
	params, err := btc.Params(btcNetwork)
	require.NoError(t, err)
	b := &btcEnv{env: e, params: params, wallets: ledger.NewWallets(e.db, nil)}
	b.sig = e.newSigner(func(c *signer.Config) {
		c.BTCChains = map[string]config.BTCChain{strings.ToLower(btcChain): {Network: btcNetwork, Confirmations: 1, FeeRate: 2, MaxFeeRate: 50,
			Native: config.NativeCoin{Symbol: "BTC", Decimals: 8, ApprovalThreshold: "1", SweepThreshold: "1"}}}
		for _, f := range change {
			f(c)
		}
	})
	b.client = serve(t, b.sig)
	acct, err := b.client.BTCAccount(context.Background(), btcNetwork)
	require.NoError(t, err)
	b.account, err = btc.NewAccount(acct.XPub, params)
	require.NoError(t, err)
	b.hot = b.register(0, 0, ledger.KindHot)
	return b
}

// serve serves sig on a Unix socket in a temporary directory and returns
// its client.
func serve(t *testing.T, sig *signer.Signer) *signerapi.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "signer")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", socket)
	require.NoError(t, err)
	srv := &http.Server{Handler: sig.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return signerapi.NewClient(socket)
}

// register records child child of the account as a wallet at HD index
// index (another index: a wallet the account does not derive there) and
// returns its address.
func (e *btcEnv) register(child, index uint32, kind ledger.WalletKind) string {
	e.t.Helper()
	addr, err := e.account.Address(child)
	require.NoError(e.t, err)
	_, err = e.wallets.RegisterHD(context.Background(), btcChain, kind, string(kind), addr, index)
	require.NoError(e.t, err)
	return addr
}

// outsider is the address of a key payflow does not hold.
func (e *btcEnv) outsider() string {
	e.t.Helper()
	k, err := btcec.NewPrivateKey()
	require.NoError(e.t, err)
	a, err := btc.KeyAddress(k.PubKey(), e.params)
	require.NoError(e.t, err)
	return a.EncodeAddress()
}

// reserveBTC credits from with amount BTC and reserves it for recipient;
// it returns the reservation key.
func (e *btcEnv) reserveBTC(from, amount, recipient string) string {
	e.t.Helper()
	ctx := context.Background()
	amt := decimal.RequireFromString(amount)
	_, err := e.led.Credit(ctx, ledger.CreditInput{Chain: btcChain, Address: from, Symbol: "BTC", Amount: amt,
		TxHash: randomTxID(e.t), Reference: "test"})
	require.NoError(e.t, err)
	key := stacktest.RandomID("pay-")
	_, err = e.led.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: btcChain, Address: from, Symbol: "BTC",
		Amount: amt, WorkflowID: key, Recipient: recipient})
	require.NoError(e.t, err)
	return key
}

func randomTxID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// coins are n outputs of from holding sats each, from random transactions.
func (e *btcEnv) coins(from string, n int, sats int64) []btc.UTXO {
	out := make([]btc.UTXO, n)
	for i := range out {
		out[i] = btc.UTXO{TxID: randomTxID(e.t), Vout: uint32(i), Address: from, Sats: sats}
	}
	return out
}

// build is the PSBT chain/btc builds: inputs to outs, change to from, at
// feeRate sat/vB; change edits the packet first (nil: none).
func (e *btcEnv) build(inputs []btc.UTXO, outs []btc.Output, from string, feeRate int64, change func(*psbt.Packet)) (string, btc.Built) {
	e.t.Helper()
	b, err := btc.BuildPSBT(btc.Spend{Inputs: inputs, Outputs: outs, Change: from, FeeRate: feeRate}, e.params)
	require.NoError(e.t, err)
	if change != nil {
		change(b.Packet)
	}
	s, err := b.Packet.B64Encode()
	require.NoError(e.t, err)
	return s, b
}

func btcRequest(wf, stepName string, attempt int, reservation, from, packet string) signerapi.BTCSignRequest {
	return signerapi.BTCSignRequest{Chain: btcChain, WorkflowID: wf, Step: stepName, Attempt: attempt, Reservation: reservation,
		From: from, PSBT: packet}
}

// script is the output script of address.
func (e *btcEnv) script(address string) []byte {
	e.t.Helper()
	_, s, err := btc.ParseAddress(address, e.params)
	require.NoError(e.t, err)
	return s
}

// verifySigned decodes a signed transaction, checks its id and runs every
// input's witness against the output it spends, as a node does: the
// signature is real, of the key that the output pays.
func (e *btcEnv) verifySigned(raw, txid string, inputs []btc.UTXO) *wire.MsgTx {
	e.t.Helper()
	b, err := hex.DecodeString(raw)
	require.NoError(e.t, err)
	var tx wire.MsgTx
	require.NoError(e.t, tx.Deserialize(bytes.NewReader(b)))
	require.Equal(e.t, txid, tx.TxHash().String())
	require.Len(e.t, tx.TxIn, len(inputs))
	prev := txscript.NewMultiPrevOutFetcher(nil)
	for _, u := range inputs {
		op, err := u.OutPoint()
		require.NoError(e.t, err)
		prev.AddPrevOut(op, wire.NewTxOut(u.Sats, e.script(u.Address)))
	}
	hashes := txscript.NewTxSigHashes(&tx, prev)
	for i, in := range tx.TxIn {
		out := prev.FetchPrevOutput(in.PreviousOutPoint)
		require.NotNil(e.t, out, "input %d spends one of the coins", i)
		require.Len(e.t, in.Witness, 2, "input %d has a P2WPKH witness", i)
		vm, err := txscript.NewEngine(out.PkScript, &tx, i, txscript.StandardVerifyFlags, nil, hashes, out.Value, prev)
		require.NoError(e.t, err)
		require.NoError(e.t, vm.Execute(), "input %d's signature verifies", i)
	}
	return &tx
}

// TestSignsABitcoinPayment: a PSBT paying a held reservation's recipient
// its amount, change back to the hot wallet, is signed over the socket:
// the raw transaction decodes, has the id answered, and every input's
// witness verifies against the output it spends. The same request again
// is answered with the same transaction, replayed; another transaction for
// the same attempt is refused. Each answer is audited.
func TestSignsABitcoinPayment(t *testing.T) {
	e := newBTCEnv(t)
	ctx := context.Background()
	to := e.outsider()
	res := e.reserveBTC(e.hot, "0.5", to)
	inputs := e.coins(e.hot, 2, 30_000_000)
	packet, built := e.build(inputs, []btc.Output{{Address: to, Sats: 50_000_000}}, e.hot, 5, nil)
	require.Positive(t, built.Change)

	got, err := e.client.SignBTC(ctx, btcRequest(res, "transfer", 0, res, e.hot, packet))
	require.NoError(t, err)
	require.False(t, got.Replayed)
	tx := e.verifySigned(got.Raw, got.TxID, inputs)
	require.Equal(t, built.Packet.UnsignedTx.TxHash().String(), got.TxID, "the transaction asked for")
	require.Len(t, tx.TxOut, 2)

	again, err := e.client.SignBTC(ctx, btcRequest(res, "transfer", 0, res, strings.ToUpper(e.hot), packet))
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, got.Raw, again.Raw)
	require.Equal(t, got.TxID, again.TxID)

	other, _ := e.build(inputs, []btc.Output{{Address: to, Sats: 50_000_000}}, e.hot, 6, nil)
	_, err = e.sig.SignBTC(ctx, btcRequest(res, "transfer", 0, res, e.hot, other))
	e.requireRefused(err, res, "step_conflict", "was signed for another transaction")
	_, err = e.client.SignBTC(ctx, btcRequest(res, "transfer", 0, res, e.hot, other))
	require.ErrorIs(t, err, signerapi.ErrRefused, "a refusal over the socket")
	require.True(t, signerapi.Permanent(err))
	require.Contains(t, signerapi.Reason(err), "was signed for another transaction")

	audit := e.auditOf(res)
	require.Len(t, audit, 4)
	require.Equal(t, signerapi.VerdictSigned, audit[0].Verdict)
	require.Equal(t, got.TxID, audit[0].TxHash)
	require.Equal(t, res, audit[0].Reservation)
	require.Equal(t, signerapi.VerdictReplayed, audit[1].Verdict)

	metrics := scrapeOf(t, e.client)
	for _, want := range []string{`payflow_signer_requests_total{chain="BTC",verdict="signed"} 1`,
		`payflow_signer_requests_total{chain="BTC",verdict="replayed"} 1`, `payflow_signer_requests_total{chain="BTC",verdict="refused"} 2`,
		`payflow_signer_refusals_total{reason="step_conflict"} 2`, `payflow_signer_sign_seconds_count{backend="hd"} 1`} {
		require.Contains(t, metrics, want)
	}
}

// scrapeOf reads the metrics a signer's client reaches.
func scrapeOf(t *testing.T, c *signerapi.Client) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", c.Socket())
	}}}
	resp, err := hc.Get("http://signer" + signerapi.PathMetrics)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	return b.String()
}

// TestRefusesBitcoinTransactionsTheReservationDoesNotPay: each transaction
// that is not exactly the reservation's payment (with change to the paying
// wallet, at a fee rate within the chain's maximum), spends an output of
// another wallet, names no held reservation, or is asked of a wallet the
// signer's account does not derive, is refused and audited with its reason.
func TestRefusesBitcoinTransactionsTheReservationDoesNotPay(t *testing.T) {
	e := newBTCEnv(t)
	ctx := context.Background()
	to := e.outsider()
	pay := []btc.Output{{Address: to, Sats: 20_000_000}}
	for _, c := range []struct {
		name, reason, want string
		outs               []btc.Output
		feeRate            int64
		change             func(*psbt.Packet)
	}{
		{name: "an output to another address", reason: "not_a_payment", want: "which is neither the recipient",
			outs: []btc.Output{pay[0], {Address: e.outsider(), Sats: 1_000_000}}},
		{name: "a wrong amount", reason: "reservation_mismatch", want: "not 0.2000001 BTC for " + to,
			outs: []btc.Output{{Address: to, Sats: 20_000_010}}},
		{name: "the recipient paid twice", reason: "reservation_mismatch", want: "in 2 outputs",
			outs: []btc.Output{{Address: to, Sats: 10_000_000}, {Address: to, Sats: 10_000_000}}},
		{name: "change to a foreign address", reason: "not_a_payment", want: "which is neither the recipient",
			outs: pay, change: func(p *psbt.Packet) {
				last := p.UnsignedTx.TxOut[len(p.UnsignedTx.TxOut)-1]
				last.PkScript = e.script(e.outsider())
			}},
		{name: "two change outputs", reason: "not_a_payment", want: "in 2 outputs",
			outs: []btc.Output{pay[0], {Address: e.hot, Sats: 1_000_000}}},
		{name: "an input not the wallet's", reason: "not_our_input", want: "the signer signs the paying wallet's outputs only",
			outs: pay, change: func(p *psbt.Packet) { p.Inputs[1].WitnessUtxo.PkScript = e.script(e.outsider()) }},
		{name: "a fee rate above the maximum", reason: "fee_cap", want: "above BTC's maximum of 50 sat/vB",
			outs: pay, feeRate: 60},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := e.reserveBTC(e.hot, "0.2", to)
			rate := c.feeRate
			if rate == 0 {
				rate = 3
			}
			packet, _ := e.build(e.coins(e.hot, 2, 15_000_000), c.outs, e.hot, rate, c.change)
			_, err := e.sig.SignBTC(ctx, btcRequest(res, "transfer", 0, res, e.hot, packet))
			e.requireRefused(err, res, c.reason, c.want)
		})
	}

	t.Run("the fee rate at the maximum is signed", func(t *testing.T) {
		res := e.reserveBTC(e.hot, "0.2", to)
		packet, _ := e.build(e.coins(e.hot, 2, 15_000_000), pay, e.hot, 50, nil)
		_, err := e.sig.SignBTC(ctx, btcRequest(res, "transfer", 0, res, e.hot, packet))
		require.NoError(t, err)
	})

	packet := func() string {
		p, _ := e.build(e.coins(e.hot, 1, 25_000_000), pay, e.hot, 2, nil)
		return p
	}
	t.Run("no reservation", func(t *testing.T) {
		wf := stacktest.RandomID("wf-")
		_, err := e.sig.SignBTC(ctx, btcRequest(wf, "transfer", 0, "", e.hot, packet()))
		e.requireRefused(err, wf, "no_reservation", "names no reservation")
		_, err = e.sig.SignBTC(ctx, btcRequest(wf, "transfer", 0, "pay-missing", e.hot, packet()))
		e.requireRefused(err, wf, "reservation_missing", "does not exist")
	})
	t.Run("a released reservation", func(t *testing.T) {
		res := e.reserveBTC(e.hot, "0.2", to)
		_, err := e.led.Release(ctx, res)
		require.NoError(t, err)
		_, err = e.sig.SignBTC(ctx, btcRequest(res, "transfer", 0, res, e.hot, packet()))
		e.requireRefused(err, res, "reservation_closed", "is released, not held")
	})
	t.Run("another wallet's reservation", func(t *testing.T) {
		other := e.register(7, 7, ledger.KindDeposit)
		res := e.reserveBTC(other, "0.2", to)
		_, err := e.sig.SignBTC(ctx, btcRequest(res, "transfer", 0, res, e.hot, packet()))
		e.requireRefused(err, res, "reservation_mismatch", "holds money of wallet "+other)
	})
	t.Run("a payment to the paying wallet", func(t *testing.T) {
		res := e.reserveBTC(e.hot, "0.2", e.hot)
		p, _ := e.build(e.coins(e.hot, 1, 25_000_000), []btc.Output{{Address: e.hot, Sats: 20_000_000}}, e.outsider(), 2, nil)
		_, err := e.client.SignBTC(ctx, btcRequest(res, "transfer", 0, res, e.hot, p))
		require.ErrorIs(t, err, signerapi.ErrBadRequest)
		require.Contains(t, err.Error(), "to itself")
	})
	t.Run("a wallet the account derives elsewhere", func(t *testing.T) {
		// Child 3 recorded at index 4: the signer's child 4 is another
		// address, and it signs nothing for this one.
		wrong := e.register(3, 4, ledger.KindDeposit)
		res := e.reserveBTC(wrong, "0.2", to)
		p, _ := e.build(e.coins(wrong, 1, 25_000_000), pay, wrong, 2, nil)
		_, err := e.client.SignBTC(ctx, btcRequest(res, "transfer", 0, res, wrong, p))
		require.ErrorIs(t, err, signerapi.ErrUnknownKey)
		require.Contains(t, err.Error(), "the wallet was derived from another account")
		last := e.auditOf(res)
		require.True(t, strings.HasPrefix(last[len(last)-1].Reason, "unknown_key: "))
	})
	t.Run("a wallet of no account", func(t *testing.T) {
		stranger := e.outsider()
		res := e.reserveBTC(stranger, "0.2", to)
		p, _ := e.build(e.coins(stranger, 1, 25_000_000), pay, stranger, 2, nil)
		_, err := e.client.SignBTC(ctx, btcRequest(res, "transfer", 0, res, stranger, p))
		require.ErrorIs(t, err, signerapi.ErrUnknownKey)
	})
	t.Run("bad requests", func(t *testing.T) {
		res := e.reserveBTC(e.hot, "0.2", to)
		for _, c := range []struct {
			req  signerapi.BTCSignRequest
			want string
		}{
			{btcRequest(res, "transfer", 0, res, e.hot, "not a psbt"), "psbt is not a base64 BIP174 packet"},
			{btcRequest(res, "transfer", 0, res, e.hot, base64.StdEncoding.EncodeToString([]byte("psbt\xff"))), "psbt is not a base64 BIP174 packet"},
			{btcRequest(res, "transfer", 0, res, "0x0000000000000000000000000000000000000001", packet()), "is not a native segwit address of BTC's network regtest"},
			{func() signerapi.BTCSignRequest {
				r := btcRequest(res, "transfer", 0, res, e.hot, packet())
				r.Chain = "LTC"
				return r
			}(), "payflow-signer signs for no Bitcoin chain LTC (it signs for BTC)"},
			{btcRequest(res, "transfer", 0, res, e.hot, func() string {
				p, _ := e.build(e.coins(e.hot, 1, 25_000_000), pay, e.hot, 2, func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo = nil })
				return p
			}()), "carries no witness UTXO"},
			{btcRequest(res, "transfer", 0, res, e.hot, func() string {
				p, _ := e.build(e.coins(e.hot, 1, 25_000_000), pay, e.hot, 2, func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo.Value = 20_000_000 })
				return p
			}()), "a transaction pays a fee above 0"},
		} {
			_, err := e.client.SignBTC(ctx, c.req)
			require.ErrorIs(t, err, signerapi.ErrBadRequest, c.want)
			require.Contains(t, err.Error(), c.want)
		}
	})
}

// TestBitcoinReplacementsSpendTheSameInputs: attempt 1 of a step, spending
// exactly attempt 0's inputs at a higher fee, is signed (so one attempt at
// most can be mined); another input set, a fee not above the previous
// attempt's, another amount or a missing previous attempt is refused; no
// other step may spend an output the step spends.
func TestBitcoinReplacementsSpendTheSameInputs(t *testing.T) {
	e := newBTCEnv(t)
	ctx := context.Background()
	to := e.outsider()
	res := e.reserveBTC(e.hot, "0.1", to)
	inputs := e.coins(e.hot, 2, 8_000_000)
	pay := []btc.Output{{Address: to, Sats: 10_000_000}}
	sign := func(attempt int, reservation string, inputs []btc.UTXO, outs []btc.Output, rate int64) (signerapi.BTCSignResponse, error) {
		p, _ := e.build(inputs, outs, e.hot, rate, nil)
		return e.sig.SignBTC(ctx, btcRequest(res, "transfer", attempt, reservation, e.hot, p))
	}

	_, err := sign(1, res, inputs, pay, 4)
	e.requireRefused(err, res, "replacement", "replaces attempt 0, which the signer never signed")

	first, err := sign(0, res, inputs, pay, 2)
	require.NoError(t, err)
	second, err := sign(1, "", inputs, pay, 4)
	require.NoError(t, err, "the same inputs at a higher fee")
	require.NotEqual(t, first.TxID, second.TxID)
	e.verifySigned(second.Raw, second.TxID, inputs)

	_, err = sign(2, res, inputs, pay, 4)
	e.requireRefused(err, res, "replacement", "not above attempt 1's")
	_, err = sign(2, res, inputs, pay, 3)
	e.requireRefused(err, res, "replacement", "not above attempt 1's")
	_, err = sign(2, res, inputs[:1], []btc.Output{{Address: to, Sats: 7_000_000}}, 8)
	e.requireRefused(err, res, "replacement", "a replacement spends exactly the same outputs")
	_, err = sign(2, res, append(slicesClone(inputs), e.coins(e.hot, 1, 1_000_000)...), pay, 8)
	e.requireRefused(err, res, "replacement", "a replacement spends exactly the same outputs")
	_, err = sign(2, res, inputs, []btc.Output{{Address: to, Sats: 9_000_000}}, 8)
	e.requireRefused(err, res, "replacement", "a replacement changes the fee only")
	// A witness UTXO that claims another amount is another input set.
	p, _ := e.build(inputs, pay, e.hot, 8, func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo.Value += 1000 })
	_, err = e.sig.SignBTC(ctx, btcRequest(res, "transfer", 2, res, e.hot, p))
	e.requireRefused(err, res, "replacement", "a replacement spends exactly the same outputs")
	_, err = sign(3, res, inputs, pay, 10)
	e.requireRefused(err, res, "replacement", "replaces attempt 2, which the signer never signed")
	_, err = sign(2, "pay-other", inputs, pay, 8)
	e.requireRefused(err, res, "replacement", "but attempt 0 paid out reservation "+res)
	third, err := sign(2, res, inputs, pay, 8)
	require.NoError(t, err)
	e.verifySigned(third.Raw, third.TxID, inputs)

	// Another step (its own reservation) spending one of the step's
	// outputs, with or without others, is refused.
	next := e.reserveBTC(e.hot, "0.05", to)
	p, _ = e.build([]btc.UTXO{inputs[1], e.coins(e.hot, 1, 9_000_000)[0]}, []btc.Output{{Address: to, Sats: 5_000_000}}, e.hot, 2, nil)
	_, err = e.sig.SignBTC(ctx, btcRequest(next, "transfer", 0, next, e.hot, p))
	e.requireRefused(err, next, "input_used", "is spent by step transfer of workflow "+res)
	// So is another step of the same workflow.
	_, err = e.sig.SignBTC(ctx, btcRequest(res, "refund", 0, next, e.hot, p))
	e.requireRefused(err, res, "input_used", "is spent by step transfer of workflow "+res)
	// With outputs of its own, it is signed.
	p, _ = e.build(e.coins(e.hot, 1, 9_000_000), []btc.Output{{Address: to, Sats: 5_000_000}}, e.hot, 2, nil)
	_, err = e.sig.SignBTC(ctx, btcRequest(next, "transfer", 0, next, e.hot, p))
	require.NoError(t, err)

	// A closed reservation's step is replaced no more.
	_, err = e.led.Release(ctx, res)
	require.NoError(t, err)
	_, err = sign(3, res, inputs, pay, 10)
	e.requireRefused(err, res, "reservation_closed", "not held")
}

func slicesClone(in []btc.UTXO) []btc.UTXO { return append([]btc.UTXO(nil), in...) }

// TestBitcoinPaymentsFollowThePaymentPolicy: a BTC payment above the
// approval threshold is refused until its workflow records an approval, as
// on an EVM chain; a transfer to a managed wallet (a sweep to the
// collection wallet) is not held, whatever its amount; a recipient on the
// deny list is refused.
func TestBitcoinPaymentsFollowThePaymentPolicy(t *testing.T) {
	e := newBTCEnv(t)
	ctx := context.Background()
	to := e.outsider()
	res := e.reserveBTC(e.hot, "1.5", to)
	p, _ := e.build(e.coins(e.hot, 1, 160_000_000), []btc.Output{{Address: to, Sats: 150_000_000}}, e.hot, 2, nil)
	_, err := e.sig.SignBTC(ctx, btcRequest(res, "transfer", 0, res, e.hot, p))
	e.requireRefused(err, res, "not_approved", "1.5 BTC is above the approval threshold 1")
	_, err = audit.New(e.db).Record(ctx, audit.Entry{Actor: "alice", Source: audit.SourceTemporal, Action: audit.ActionApprove,
		Subject: res, Payment: res, Reason: "known customer", Key: res + "/approval"})
	require.NoError(t, err)
	_, err = e.sig.SignBTC(ctx, btcRequest(res, "transfer", 0, res, e.hot, p))
	require.NoError(t, err, "approved")

	collection := e.register(1, 1, ledger.KindCollection)
	deposit := e.register(2, 2, ledger.KindDeposit)
	sweep := e.reserveBTC(deposit, "5", collection)
	p, _ = e.build(e.coins(deposit, 1, 500_010_000), []btc.Output{{Address: collection, Sats: 500_000_000}}, deposit, 2, nil)
	_, err = e.sig.SignBTC(ctx, btcRequest(sweep, "sweep", 0, sweep, deposit, p))
	require.NoError(t, err, "a sweep between managed wallets is not held")
}

// TestBitcoinPaymentsToAListedRecipientAreRefused: the deny list screens a
// Bitcoin payment's recipient as an EVM one's.
func TestBitcoinPaymentsToAListedRecipientAreRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deny.txt")
	require.NoError(t, os.WriteFile(path, nil, 0o644))
	screen, err := denylist.Open(path, nil)
	require.NoError(t, err)
	e := newBTCEnv(t, func(c *signer.Config) { c.DenyList = screen })
	listed := e.outsider()
	require.NoError(t, os.WriteFile(path, []byte(strings.ToUpper(listed)+" OFAC-SDN 2026-11-30\n"), 0o644))
	require.NoError(t, screen.Reload())

	res := e.reserveBTC(e.hot, "0.1", listed)
	p, _ := e.build(e.coins(e.hot, 1, 11_000_000), []btc.Output{{Address: listed, Sats: 10_000_000}}, e.hot, 2, nil)
	_, err = e.sig.SignBTC(context.Background(), btcRequest(res, "transfer", 0, res, e.hot, p))
	e.requireRefused(err, res, "recipient_blocked", "recipient is blocked: "+listed+" is on the deny list (OFAC-SDN 2026-11-30)")
}

// TestConcurrentBitcoinRequests: 8 identical requests at once store one
// signature and answer the 7 others with it, replayed; two steps racing
// for one output get one signature between them.
func TestConcurrentBitcoinRequests(t *testing.T) {
	e := newBTCEnv(t)
	ctx := context.Background()
	to := e.outsider()
	res := e.reserveBTC(e.hot, "0.25", to)
	inputs := e.coins(e.hot, 1, 26_000_000)
	p, _ := e.build(inputs, []btc.Output{{Address: to, Sats: 25_000_000}}, e.hot, 2, nil)
	req := btcRequest(res, "transfer", 0, res, e.hot, p)

	requireSignsOnce(t, e.env, res, 8, func() (signerapi.BTCSignResponse, error) { return e.client.SignBTC(ctx, req) },
		func(r signerapi.BTCSignResponse) string { return r.Raw }, func(r signerapi.BTCSignResponse) bool { return r.Replayed })

	// Two steps, each with its own reservation, spend one output at once.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	shared := e.coins(e.hot, 1, 6_000_000)
	keys := []string{e.reserveBTC(e.hot, "0.05", to), e.reserveBTC(e.hot, "0.05", to)}
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _ := e.build(shared, []btc.Output{{Address: to, Sats: 5_000_000}}, e.hot, int64(2+i), nil)
			_, errs[i] = e.client.SignBTC(ctx, btcRequest(keys[i], "transfer", 0, keys[i], e.hot, p))
		}()
	}
	wg.Wait()
	require.True(t, (errs[0] == nil) != (errs[1] == nil), "one of the two is signed: %v, %v", errs[0], errs[1])
	for _, err := range errs[:2] {
		if err != nil {
			require.ErrorIs(t, err, signerapi.ErrRefused)
			require.Contains(t, err.Error(), "spent by")
		}
	}
}

// TestASignerWithoutBTCChainsReloadsThem: a signer started before
// btc_chains was written reads them at the first request that names one.
func TestASignerWithoutBTCChainsReloadsThem(t *testing.T) {
	var chains map[string]config.BTCChain
	e := newBTCEnv(t, func(c *signer.Config) {
		chains, c.BTCChains = c.BTCChains, nil
		c.Reload = func() (config.Config, error) { return config.Config{BTCChains: chains}, nil }
	})
	to := e.outsider()
	res := e.reserveBTC(e.hot, "0.1", to)
	p, _ := e.build(e.coins(e.hot, 1, 11_000_000), []btc.Output{{Address: to, Sats: 10_000_000}}, e.hot, 2, nil)
	_, err := e.client.SignBTC(context.Background(), btcRequest(res, "transfer", 0, res, e.hot, p))
	require.NoError(t, err)
	require.Contains(t, scrapeOf(t, e.client), `payflow_signer_requests_total{chain="BTC",verdict="signed"} 1`)
}
