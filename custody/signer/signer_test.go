package signer_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/config"
	"payflow/custody/hd"
	custodykms "payflow/custody/kms"
	"payflow/custody/signer"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

const (
	chainName = "ETH"
	chainID   = 1337
	maxFee    = 100 // gwei
)

// env is one signer on a fresh database of the dev stack's MariaDB, with
// the dev stack's local-kms, served on a Unix socket in a temporary
// directory and called through signerapi.Client.
type env struct {
	t      *testing.T
	db     *sql.DB
	led    *ledger.Ledger
	kms    *awskms.Client
	sig    *signer.Signer
	client *signerapi.Client
	socket string
	token  string // the USDT contract of the test chain
	logs   *syncBuffer
}

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

func devKMS(t *testing.T) *awskms.Client {
	t.Helper()
	st := stacktest.Load(t)
	if st.KMSEndpoint == "" {
		t.Fatal("stack.json has no kms_endpoint: run `make up` (local-kms is part of the dev stack)")
	}
	c, err := custodykms.NewClient(context.Background(), custodykms.DevConfig(st.KMSEndpoint))
	require.NoError(t, err)
	return c
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db := stacktest.TestDB(t, "signer")
	require.NoError(t, ledger.Migrate(ctx, db))
	e := &env{t: t, db: db, led: ledger.NewUnbatched(db), kms: devKMS(t), token: stacktest.RandomAddress(), logs: &syncBuffer{}}
	e.sig = e.newSigner(nil)
	t.Cleanup(func() { e.deleteKMSKeys() })

	dir, err := os.MkdirTemp("", "signer")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	e.socket = filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", e.socket)
	require.NoError(t, err)
	srv := &http.Server{Handler: e.sig.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.client = signerapi.NewClient(e.socket)
	return e
}

// chains is the test's one chain.
func (e *env) chains() map[string]config.ChainConfig {
	return map[string]config.ChainConfig{chainName: {
		ChainID: chainID, MaxFeeGwei: maxFee, Native: config.NativeCoin{Symbol: "ETH"},
		Tokens: map[string]config.Token{"USDT": {Address: e.token, Decimals: 6}},
	}}
}

// newSigner opens a signer on e's database (a second one shares its state),
// with e's chains unless change says otherwise.
func (e *env) newSigner(change func(*signer.Config)) *signer.Signer {
	e.t.Helper()
	cfg := signer.Config{Chains: e.chains(), KMS: e.kms, KMSName: "local-kms", Log: slog.New(slog.NewJSONHandler(e.logs, nil))}
	if change != nil {
		change(&cfg)
	}
	s, err := signer.New(context.Background(), e.db, cfg)
	require.NoError(e.t, err)
	return s
}

// deleteKMSKeys schedules the deletion of the KMS keys the test made.
func (e *env) deleteKMSKeys() {
	ctx := context.Background()
	ids := []string{e.sig.EnvelopeKeyID()}
	if st, err := e.sig.Status(ctx); err == nil {
		for _, k := range st.Keys {
			if k.KMSKeyID != "" {
				ids = append(ids, k.KMSKeyID)
			}
		}
	}
	for _, id := range ids {
		_, _ = e.kms.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)})
	}
}

func (e *env) newKey(backend string) string {
	e.t.Helper()
	k, err := e.client.NewKey(context.Background(), backend)
	require.NoError(e.t, err)
	require.Equal(e.t, backend, k.Backend)
	return k.Address
}

// reserve credits from with amount of symbol and reserves it under a new
// key for recipient ("" names none). It returns the reservation key.
func (e *env) reserve(from, symbol, amount, recipient string) string {
	e.t.Helper()
	ctx := context.Background()
	amt := decimal.RequireFromString(amount)
	_, err := e.led.Credit(ctx, ledger.CreditInput{Chain: chainName, Address: from, Symbol: symbol, Amount: amt,
		TxHash: common.BytesToHash([]byte(stacktest.RandomID("credit"))).Hex(), Reference: "test"})
	require.NoError(e.t, err)
	key := stacktest.RandomID("pay-")
	_, err = e.led.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: chainName, Address: from, Symbol: symbol,
		Amount: amt, WorkflowID: key, Recipient: recipient})
	require.NoError(e.t, err)
	return key
}

// units is amount in base units of decimals.
func units(amount string, decimals int32) *big.Int {
	return decimal.RequireFromString(amount).Shift(decimals).BigInt()
}

func gweiWei(g int64) string { return new(big.Int).Mul(big.NewInt(g), big.NewInt(1e9)).String() }

// tokenTx is a USDT transfer of amount to recipient.
func (e *env) tokenTx(nonce uint64, recipient, amount string) signerapi.UnsignedTx {
	data := make([]byte, 68)
	copy(data, []byte{0xa9, 0x05, 0x9c, 0xbb})
	copy(data[16:36], common.HexToAddress(recipient).Bytes())
	units(amount, 6).FillBytes(data[36:])
	return signerapi.UnsignedTx{Nonce: nonce, To: e.token, Value: "0", Data: hexutil.Encode(data), Gas: 60_000,
		TipCap: gweiWei(1), FeeCap: gweiWei(20)}
}

// nativeTx is a transfer of amount ETH to recipient.
func nativeTx(nonce uint64, recipient, amount string) signerapi.UnsignedTx {
	return signerapi.UnsignedTx{Nonce: nonce, To: recipient, Value: units(amount, 18).String(), Gas: 21_000,
		TipCap: gweiWei(1), FeeCap: gweiWei(20)}
}

func request(wf, stepName string, attempt int, reservation, from string, tx signerapi.UnsignedTx) signerapi.SignRequest {
	return signerapi.SignRequest{Chain: chainName, ChainID: chainID, WorkflowID: wf, Step: stepName, Attempt: attempt,
		Reservation: reservation, From: from, Tx: tx}
}

// decodeSigned reads a raw transaction and its sender.
func decodeSigned(t *testing.T, raw string) (*types.Transaction, string) {
	t.Helper()
	var tx types.Transaction
	require.NoError(t, tx.UnmarshalBinary(hexutil.MustDecode(raw)))
	from, err := types.Sender(types.LatestSignerForChainID(big.NewInt(chainID)), &tx)
	require.NoError(t, err)
	return &tx, strings.ToLower(from.Hex())
}

// auditOf reads the audit entries of a workflow, oldest first.
type auditRow struct{ Step, Verdict, Reason, TxHash, Reservation string }

func (e *env) auditOf(wf string) []auditRow {
	e.t.Helper()
	rows, err := e.db.Query("SELECT step, verdict, reason, tx_hash, reservation_key FROM signer_audit WHERE workflow_id=? ORDER BY id", wf)
	require.NoError(e.t, err)
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		require.NoError(e.t, rows.Scan(&r.Step, &r.Verdict, &r.Reason, &r.TxHash, &r.Reservation))
		out = append(out, r)
	}
	require.NoError(e.t, rows.Err())
	return out
}

// requireRefused checks err is a refusal whose message holds want, and
// that the audit's last entry for wf records it with reason.
func (e *env) requireRefused(err error, wf, reason, want string) {
	e.t.Helper()
	require.Error(e.t, err)
	require.True(e.t, errors.Is(err, signerapi.ErrRefused), "want a refusal, got %v", err)
	require.Contains(e.t, err.Error(), want)
	audit := e.auditOf(wf)
	require.NotEmpty(e.t, audit, "the refusal is audited")
	last := audit[len(audit)-1]
	require.Equal(e.t, signerapi.VerdictRefused, last.Verdict)
	require.True(e.t, strings.HasPrefix(last.Reason, reason+": "), "audit reason %q, want reason %s", last.Reason, reason)
	require.Contains(e.t, last.Reason, want)
}

func TestSignsPaymentsOfEachAssetWithEachBackend(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, backend := range []string{signerapi.BackendEnvelope, signerapi.BackendKMS} {
		from := e.newKey(backend)
		for _, asset := range []string{"USDT", "ETH"} {
			t.Run(backend+"/"+asset, func(t *testing.T) {
				to := stacktest.RandomAddress()
				amount := "12.5"
				res := e.reserve(from, asset, amount, to)
				utx := e.tokenTx(7, to, amount)
				if asset == "ETH" {
					utx = nativeTx(7, to, amount)
				}
				req := request(res, "transfer", 0, res, from, utx)
				got, err := e.client.Sign(ctx, req)
				require.NoError(t, err)
				require.False(t, got.Replayed)
				tx, sender := decodeSigned(t, got.Raw)
				require.Equal(t, from, sender, "the raw transaction recovers to the sender")
				require.Equal(t, tx.Hash().Hex(), got.TxHash)
				require.Equal(t, uint64(7), tx.Nonce())
				require.Equal(t, int64(chainID), tx.ChainId().Int64())
				if asset == "ETH" {
					require.Equal(t, strings.ToLower(to), strings.ToLower(tx.To().Hex()))
					require.Equal(t, units(amount, 18), tx.Value())
					require.Empty(t, tx.Data())
				} else {
					require.Equal(t, e.token, strings.ToLower(tx.To().Hex()))
					require.Equal(t, hexutil.MustDecode(utx.Data), tx.Data())
				}

				again, err := e.client.Sign(ctx, req)
				require.NoError(t, err)
				require.True(t, again.Replayed)
				require.Equal(t, got.Raw, again.Raw, "a replay returns the stored raw transaction")
				require.Equal(t, got.TxHash, again.TxHash)

				audit := e.auditOf(res)
				require.Len(t, audit, 2)
				require.Equal(t, signerapi.VerdictSigned, audit[0].Verdict)
				require.Equal(t, got.TxHash, audit[0].TxHash)
				require.Equal(t, res, audit[0].Reservation)
				require.Equal(t, signerapi.VerdictReplayed, audit[1].Verdict)
			})
		}
	}
}

func TestADifferentTransactionForASignedStepIsRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	from := e.newKey(signerapi.BackendEnvelope)
	to := stacktest.RandomAddress()
	res := e.reserve(from, "USDT", "5", to)
	_, err := e.client.Sign(ctx, request(res, "transfer", 0, res, from, e.tokenTx(3, to, "5")))
	require.NoError(t, err)

	other := e.tokenTx(3, to, "5")
	other.FeeCap = gweiWei(30)
	_, err = e.client.Sign(ctx, request(res, "transfer", 0, res, from, other))
	e.requireRefused(err, res, "step_conflict", "was signed for another transaction (fee cap 20000000000 wei, not 30000000000)")

	_, err = e.client.Sign(ctx, request(res, "transfer", 0, res, from, e.tokenTx(4, to, "5")))
	e.requireRefused(err, res, "step_conflict", "nonce 3, not 4")
}

func TestRefusesWhatTheReservationDoesNotHold(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	from := e.newKey(signerapi.BackendEnvelope)
	other := e.newKey(signerapi.BackendEnvelope)
	to := stacktest.RandomAddress()

	cases := []struct {
		name   string
		req    func() signerapi.SignRequest
		reason string
		want   string
	}{
		{"missing reservation", func() signerapi.SignRequest {
			return request(stacktest.RandomID("wf-"), "transfer", 0, "pay-nobody-made", from, e.tokenTx(0, to, "5"))
		}, "reservation_missing", "reservation pay-nobody-made does not exist"},
		{"no reservation named", func() signerapi.SignRequest {
			return request(stacktest.RandomID("wf-"), "transfer", 0, "", from, e.tokenTx(0, to, "5"))
		}, "no_reservation", "names no reservation"},
		{"other amount", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", to)
			return request(res, "transfer", 0, res, from, e.tokenTx(0, to, "6"))
		}, "reservation_mismatch", fmt.Sprintf("holds 5 USDT for %s, not 6 USDT for %s", to, to)},
		{"other recipient", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", to)
			return request(res, "transfer", 0, res, from, e.tokenTx(0, "0x00000000000000000000000000000000000000aa", "5"))
		}, "reservation_mismatch", fmt.Sprintf("holds 5 USDT for %s, not 5 USDT for 0x00000000000000000000000000000000000000aa", to)},
		{"other asset", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", to)
			return request(res, "transfer", 0, res, from, nativeTx(0, to, "5"))
		}, "reservation_mismatch", fmt.Sprintf("holds 5 USDT for %s, not 5 ETH for %s", to, to)},
		{"other wallet", func() signerapi.SignRequest {
			res := e.reserve(other, "USDT", "5", to)
			return request(res, "transfer", 0, res, from, e.tokenTx(0, to, "5"))
		}, "reservation_mismatch", fmt.Sprintf("holds money of wallet %s, not of %s", other, from)},
		{"released", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", to)
			_, err := e.led.Release(ctx, res)
			require.NoError(t, err)
			return request(res, "transfer", 0, res, from, e.tokenTx(0, to, "5"))
		}, "reservation_closed", "is released, not held"},
		{"used by another step", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", to)
			_, err := e.client.Sign(ctx, request(res, "transfer", 0, res, from, e.tokenTx(0, to, "5")))
			require.NoError(t, err)
			return request(res, "topup", 0, res, from, e.tokenTx(1, to, "5"))
		}, "reservation_used", "already pays for step transfer of workflow"},
		{"no recipient", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", "")
			return request(res, "transfer", 0, res, from, e.tokenTx(0, to, "5"))
		}, "no_recipient", "the reservation names no recipient"},
		{"not a token", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", to)
			tx := e.tokenTx(0, to, "5")
			tx.To = stacktest.RandomAddress()
			return request(res, "transfer", 0, res, from, tx)
		}, "not_a_payment", "which is no token of the chain"},
		{"token call with value", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", to)
			tx := e.tokenTx(0, to, "5")
			tx.Value = "1"
			return request(res, "transfer", 0, res, from, tx)
		}, "not_a_payment", "also sends 1 wei of the native coin"},
		{"unknown chain", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", to)
			r := request(res, "transfer", 0, res, from, e.tokenTx(0, to, "5"))
			r.Chain = "TRX"
			return r
		}, "unknown_chain", "signs for no chain TRX (it signs for ETH)"},
		{"other chain id", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", to)
			r := request(res, "transfer", 0, res, from, e.tokenTx(0, to, "5"))
			r.ChainID = 1
			return r
		}, "chain_id", "chain id 1 is not ETH's (1337)"},
		{"fee cap above the maximum", func() signerapi.SignRequest {
			res := e.reserve(from, "USDT", "5", to)
			tx := e.tokenTx(0, to, "5")
			tx.FeeCap = gweiWei(101)
			return request(res, "transfer", 0, res, from, tx)
		}, "fee_cap", "fee cap 101 gwei is above ETH's maximum of 100 gwei"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := c.req()
			_, err := e.client.Sign(ctx, req)
			e.requireRefused(err, req.WorkflowID, c.reason, c.want)
		})
	}
}

func TestBadRequestsAndUnknownKeysAreAudited(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	to := stacktest.RandomAddress()

	wf := stacktest.RandomID("wf-")
	r := request(wf, "", 0, "x", to, nativeTx(0, to, "1"))
	_, err := e.client.Sign(ctx, r)
	require.ErrorIs(t, err, signerapi.ErrBadRequest)
	require.Contains(t, err.Error(), "step is required")
	audit := e.auditOf(wf)
	require.Len(t, audit, 1)
	require.Equal(t, signerapi.VerdictRefused, audit[0].Verdict)
	require.True(t, strings.HasPrefix(audit[0].Reason, "bad_request: "))

	// Whatever a bad request names is audited, cut to the columns.
	wf = stacktest.RandomID("wf-ü-")
	r = request(wf, "transfer", 0, "x", "0xé"+strings.Repeat("z", 100), nativeTx(0, to, "1"))
	r.Chain = "ÉTH"
	_, err = e.client.Sign(ctx, r)
	require.ErrorIs(t, err, signerapi.ErrBadRequest)
	audit = e.auditOf(wf)
	require.Len(t, audit, 1)
	require.Contains(t, audit[0].Reason, "is not a chain name")

	nobody := stacktest.RandomAddress()
	res := e.reserve(nobody, "ETH", "1", to)
	_, err = e.client.Sign(ctx, request(res, "transfer", 0, res, nobody, nativeTx(0, to, "1")))
	require.ErrorIs(t, err, signerapi.ErrUnknownKey)
	require.Contains(t, err.Error(), "the signer holds no key for "+nobody)
	audit = e.auditOf(res)
	require.Len(t, audit, 1)
	require.True(t, strings.HasPrefix(audit[0].Reason, "unknown_key: "))
}

func TestReplacementsChangeOnlyTheFees(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	from := e.newKey(signerapi.BackendKMS)
	to := stacktest.RandomAddress()
	res := e.reserve(from, "USDT", "8", to)
	first, err := e.client.Sign(ctx, request(res, "transfer", 0, res, from, e.tokenTx(11, to, "8")))
	require.NoError(t, err)

	bumped := e.tokenTx(11, to, "8")
	bumped.TipCap, bumped.FeeCap = gweiWei(2), gweiWei(40)
	second, err := e.client.Sign(ctx, request(res, "transfer", 1, "", from, bumped))
	require.NoError(t, err)
	require.False(t, second.Replayed)
	require.NotEqual(t, first.TxHash, second.TxHash)
	tx, sender := decodeSigned(t, second.Raw)
	require.Equal(t, from, sender)
	require.Equal(t, uint64(11), tx.Nonce())
	require.Equal(t, big.NewInt(40e9), tx.GasFeeCap())
	audit := e.auditOf(res)
	require.Equal(t, res, audit[len(audit)-1].Reservation, "a replacement is audited with attempt 0's reservation")

	otherNonce := e.tokenTx(12, to, "8")
	otherNonce.FeeCap = gweiWei(60)
	_, err = e.client.Sign(ctx, request(res, "transfer", 2, "", from, otherNonce))
	e.requireRefused(err, res, "replacement", "only the fees may change, and it has nonce 11, not 12")

	otherTo := stacktest.RandomAddress()
	otherRecipient := e.tokenTx(11, otherTo, "8")
	otherRecipient.FeeCap = gweiWei(60)
	_, err = e.client.Sign(ctx, request(res, "transfer", 2, "", from, otherRecipient))
	e.requireRefused(err, res, "replacement", "only the fees may change, and it has data")

	_, err = e.client.Sign(ctx, request(res, "transfer", 3, "", from, bumped))
	e.requireRefused(err, res, "replacement", "replaces attempt 2, which the signer never signed")

	_, err = e.client.Sign(ctx, request(res, "transfer", 2, "another-reservation", from, bumped))
	e.requireRefused(err, res, "replacement", "names reservation another-reservation, but attempt 0 paid out reservation "+res)

	_, err = e.led.Release(ctx, res)
	require.NoError(t, err)
	_, err = e.client.Sign(ctx, request(res, "transfer", 2, "", from, bumped))
	e.requireRefused(err, res, "reservation_closed", "is released, not held")
}

// TestGapFillersNeedNoReservation: the healer's gap filler (a 0-value
// self-transfer of plain-transfer gas at the nonce its step names) is signed
// without a reservation; anything else under that name is not.
func TestGapFillersNeedNoReservation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	from := e.newKey(signerapi.BackendEnvelope)
	wf := "nonce-gap-" + from
	filler := func(nonce uint64) signerapi.UnsignedTx {
		tx := nativeTx(nonce, from, "0")
		tx.Gas = 21000
		return tx
	}
	got, err := e.client.Sign(ctx, request(wf, "nonce-7", 1000, "", from, filler(7)))
	require.NoError(t, err)
	tx, sender := decodeSigned(t, got.Raw)
	require.Equal(t, from, sender)
	require.Equal(t, uint64(7), tx.Nonce())

	other := stacktest.RandomAddress()
	pays := nativeTx(8, other, "0.1")
	pays.Gas = 21000
	_, err = e.client.Sign(ctx, request(wf, "nonce-8", 1000, "", from, pays))
	e.requireRefused(err, wf, "replacement", "")
	_, err = e.client.Sign(ctx, request(wf, "nonce-9", 1000, "", from, filler(10)))
	e.requireRefused(err, wf, "replacement", "")
	_, err = e.client.Sign(ctx, request("nonce-gap-"+other, "nonce-11", 1000, "", from, filler(11)))
	e.requireRefused(err, "nonce-gap-"+other, "replacement", "")
}

func TestSignsForAnHDWalletOfTheLedger(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st, err := e.client.Status(ctx)
	require.NoError(t, err)
	account, err := hd.NewAccount(st.AccountXPub)
	require.NoError(t, err)
	i := uint32(big.NewInt(0).SetBytes([]byte(stacktest.RandomID(""))[:3]).Int64())
	child, err := account.DepositAddress(i)
	require.NoError(t, err)
	address := strings.ToLower(child.Hex())
	_, err = e.db.Exec("INSERT INTO wallets (chain, address, kind, label, key_holder, hd_index) VALUES (?,?,?,?,?,?)",
		chainName, address, "deposit", "hd-test", ledger.KeySigner, i)
	require.NoError(t, err)

	to := stacktest.RandomAddress()
	res := e.reserve(address, "USDT", "3", to)
	got, err := e.client.Sign(ctx, request(res, "sweep", 0, res, address, e.tokenTx(0, to, "3")))
	require.NoError(t, err)
	_, sender := decodeSigned(t, got.Raw)
	require.Equal(t, address, sender, "child %d of the signer's mnemonic signed", i)

	// A wallet whose hd_index names another child is not signed for.
	wrong := stacktest.RandomAddress()
	_, err = e.db.Exec("INSERT INTO wallets (chain, address, kind, label, key_holder, hd_index) VALUES (?,?,?,?,?,?)",
		chainName, wrong, "deposit", "hd-wrong", ledger.KeySigner, i+1)
	require.NoError(t, err)
	res = e.reserve(wrong, "USDT", "3", to)
	_, err = e.client.Sign(ctx, request(res, "sweep", 0, res, wrong, e.tokenTx(0, to, "3")))
	require.ErrorIs(t, err, signerapi.ErrUnknownKey)
	require.Contains(t, err.Error(), "the wallet was derived from another account")
}

func TestAuditRefusesUpdateAndDelete(t *testing.T) {
	e := newEnv(t)
	to := stacktest.RandomAddress()
	_, err := e.client.Sign(context.Background(), request(stacktest.RandomID("wf-"), "transfer", 0, "", to, nativeTx(0, to, "1")))
	require.ErrorIs(t, err, signerapi.ErrRefused)

	_, err = e.db.Exec("UPDATE signer_audit SET verdict='signed'")
	require.ErrorContains(t, err, "append-only")
	_, err = e.db.Exec("DELETE FROM signer_audit")
	require.ErrorContains(t, err, "append-only")
	var n int
	require.NoError(t, e.db.QueryRow("SELECT COUNT(*) FROM signer_audit WHERE verdict='refused'").Scan(&n))
	require.Equal(t, 1, n)
}

func TestConcurrentIdenticalRequestsSignOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	from := e.newKey(signerapi.BackendKMS)
	to := stacktest.RandomAddress()
	res := e.reserve(from, "ETH", "0.25", to)
	req := request(res, "transfer", 0, res, from, nativeTx(2, to, "0.25"))

	requireSignsOnce(t, e, res, 8, func() (signerapi.SignResponse, error) { return e.client.Sign(ctx, req) },
		func(r signerapi.SignResponse) string { return r.Raw }, func(r signerapi.SignResponse) bool { return r.Replayed })
	var rows int
	require.NoError(t, e.db.QueryRow("SELECT COUNT(*) FROM signer_steps WHERE workflow_id=?", res).Scan(&rows))
	require.Equal(t, 1, rows)
}

func TestKeyRowsDoNotOpenWithoutTheKMS(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	priv := "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318" // a well-known test key
	k, err := e.client.Import(ctx, "0x"+priv)
	require.NoError(t, err)
	require.Equal(t, signerapi.BackendEnvelope, k.Backend)
	again, err := e.client.Import(ctx, priv)
	require.NoError(t, err)
	require.Equal(t, k, again, "importing a key again returns the stored one")

	var sealed []byte
	require.NoError(t, e.db.QueryRow("SELECT sealed FROM signer_keys WHERE address=?", k.Address).Scan(&sealed))
	raw := hexutil.MustDecode("0x" + priv)
	require.False(t, bytes.Contains(sealed, raw), "the sealed bytes hold no plaintext key")
	require.False(t, bytes.Contains(bytes.ToLower(sealed), []byte(priv)), "nor its hex")

	s, err := custodykms.UnmarshalSealed(sealed)
	require.NoError(t, err)
	plain, err := custodykms.NewEnvelope(e.kms, e.sig.EnvelopeKeyID()).Open(ctx, s, []byte(k.Address))
	require.NoError(t, err, "the signer's envelope key opens it")
	require.Equal(t, raw, plain)
	otherKey, err := custodykms.CreateEnvelopeKey(ctx, e.kms, "payflow test "+t.Name())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = e.kms.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(otherKey), PendingWindowInDays: aws.Int32(7)})
	})
	_, err = custodykms.NewEnvelope(e.kms, otherKey).Open(ctx, s, []byte(k.Address))
	require.Error(t, err, "another envelope key does not open it")
	_, err = custodykms.NewEnvelope(e.kms, e.sig.EnvelopeKeyID()).Open(ctx, s, []byte(stacktest.RandomAddress()))
	require.ErrorIs(t, err, custodykms.ErrOpen, "nor does the right key for another address")

	// The key signs, and appears in no log, error, status or metric.
	to := stacktest.RandomAddress()
	res := e.reserve(k.Address, "ETH", "1", to)
	got, err := e.client.Sign(ctx, request(res, "transfer", 0, res, k.Address, nativeTx(0, to, "1")))
	require.NoError(t, err)
	_, sender := decodeSigned(t, got.Raw)
	require.Equal(t, k.Address, sender)
	_, err = e.client.Import(ctx, priv[:60]+"zz")
	require.ErrorIs(t, err, signerapi.ErrBadRequest)
	require.NotContains(t, err.Error(), priv[:60])
	st, err := e.client.Status(ctx)
	require.NoError(t, err)
	metrics := e.scrape()
	for _, text := range []string{e.logs.String(), fmt.Sprint(st), metrics} {
		require.NotContains(t, strings.ToLower(text), priv[:16])
	}
}

// scrape reads /metrics over the socket.
func (e *env) scrape() string {
	e.t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.socket)
	}}}
	resp, err := c.Get("http://signer" + signerapi.PathMetrics)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	return string(b)
}

func TestStatusAndMetrics(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	from := e.newKey(signerapi.BackendEnvelope)
	to := stacktest.RandomAddress()
	res := e.reserve(from, "ETH", "1", to)
	_, err := e.client.Sign(ctx, request(res, "transfer", 0, res, from, nativeTx(0, to, "1")))
	require.NoError(t, err)
	_, err = e.client.Sign(ctx, request(res, "transfer", 0, res, from, nativeTx(0, to, "1")))
	require.NoError(t, err)
	_, err = e.client.Sign(ctx, request(res, "other", 0, res, from, nativeTx(1, to, "1")))
	require.ErrorIs(t, err, signerapi.ErrRefused)

	st, err := e.client.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, "local-kms", st.KMS)
	require.Equal(t, e.sig.EnvelopeKeyID(), st.EnvelopeKeyID)
	require.Equal(t, e.sig.AccountXPub(), st.AccountXPub)
	require.Len(t, st.Keys, 1)
	require.Equal(t, from, st.Keys[0].Address)
	require.Len(t, st.Last, 3)
	require.Equal(t, []string{signerapi.VerdictRefused, signerapi.VerdictReplayed, signerapi.VerdictSigned},
		[]string{st.Last[0].Verdict, st.Last[1].Verdict, st.Last[2].Verdict}, "newest first")

	m := e.scrape()
	for _, line := range []string{
		`payflow_signer_requests_total{chain="ETH",verdict="signed"} 1`,
		`payflow_signer_requests_total{chain="ETH",verdict="replayed"} 1`,
		`payflow_signer_requests_total{chain="ETH",verdict="refused"} 1`,
		`payflow_signer_refusals_total{reason="reservation_used"} 1`,
		`payflow_signer_sign_seconds_count{backend="envelope"} 1`,
		`payflow_signer_keys{backend="envelope"} 1`,
		`payflow_signer_keys{backend="kms"} 0`,
	} {
		require.Contains(t, m, line+"\n")
	}
}

func TestStateIsCreatedOnceAndReopened(t *testing.T) {
	e := newEnv(t)
	xpub := e.sig.AccountXPub()
	require.True(t, strings.HasPrefix(xpub, "xpub"))
	again := e.newSigner(func(c *signer.Config) { c.EnvelopeKeyID = "some-other-key" })
	require.Equal(t, xpub, again.AccountXPub(), "a restart reopens the sealed mnemonic")
	require.Equal(t, e.sig.EnvelopeKeyID(), again.EnvelopeKeyID())

	var sealed []byte
	require.NoError(t, e.db.QueryRow("SELECT sealed_mnemonic FROM signer_state WHERE id=1").Scan(&sealed))
	s, err := custodykms.UnmarshalSealed(sealed)
	require.NoError(t, err)
	otherKey, err := custodykms.CreateEnvelopeKey(context.Background(), e.kms, "payflow test "+t.Name())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = e.kms.ScheduleKeyDeletion(context.Background(), &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(otherKey), PendingWindowInDays: aws.Int32(7)})
	})
	_, err = custodykms.NewEnvelope(e.kms, otherKey).Open(context.Background(), s, []byte("payflow-signer mnemonic"))
	require.Error(t, err, "the mnemonic does not open under another KMS key")
}

func TestASignerWithoutChainsReloadsThem(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	reloads := 0
	s := e.newSigner(func(c *signer.Config) {
		c.Chains = nil
		c.Reload = func() (config.Config, error) {
			reloads++
			return config.Config{Chains: e.chains()}, nil
		}
	})
	from := e.newKey(signerapi.BackendEnvelope)
	to := stacktest.RandomAddress()
	res := e.reserve(from, "ETH", "1", to)
	got, err := s.Sign(ctx, request(res, "transfer", 0, res, from, nativeTx(0, to, "1")))
	require.NoError(t, err, "the first request for an unknown chain reloads the chains")
	_, sender := decodeSigned(t, got.Raw)
	require.Equal(t, from, sender)

	r := request(stacktest.RandomID("wf-"), "transfer", 0, res, from, nativeTx(0, to, "1"))
	r.Chain = "TRX"
	_, err = s.Sign(ctx, r)
	var refusal *signer.Refusal
	require.ErrorAs(t, err, &refusal)
	require.Equal(t, "unknown_chain", refusal.Reason)
	require.Equal(t, 1, reloads, "reloads are spaced")
}

// requireSignsOnce sends n identical requests at once (sign) and requires
// one signature: every answer the same stored transaction (raw), all but
// one replayed, and the audit trail of wf saying so.
func requireSignsOnce[R any](t *testing.T, e *env, wf string, n int, sign func() (R, error), raw func(R) string,
	replayedOf func(R) bool) {
	t.Helper()
	var wg sync.WaitGroup
	answers := make([]R, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { answers[i], errs[i] = sign() })
	}
	wg.Wait()
	replayed := 0
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, raw(answers[0]), raw(answers[i]), "every answer is the one stored transaction")
		if replayedOf(answers[i]) {
			replayed++
		}
	}
	require.Equal(t, n-1, replayed)
	verdicts := map[string]int{}
	for _, a := range e.auditOf(wf) {
		verdicts[a.Verdict]++
	}
	require.Equal(t, map[string]int{signerapi.VerdictSigned: 1, signerapi.VerdictReplayed: n - 1}, verdicts)
}
