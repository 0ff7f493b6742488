package send_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common/hexutil"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/send"
	"payflow/custody/signerapi"

	"payflow/chain/evm/evmtest"
)

// TestSignerAsksForTheTransferItMeans: the signer is asked for attempt 0 of
// the step, naming its reservation, with the transaction to sign spelled
// out: for a token, a call of the token's transfer(recipient, units) with no
// value; for the native coin, the value to the recipient and no data. What
// is stored is what was asked.
func TestSignerAsksForTheTransferItMeans(t *testing.T) {
	f := newChainFixture(t)
	req := f.Request("wf-ask", 1_234)
	req.Reservation = "wf-ask"
	stx, err := f.BC.Signer.SignTransfer(f.Ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	top, err := f.BC.Signer.SignNative(f.Ctx, send.NativeTransferRequest{WorkflowID: "wf-ask", Step: "gas-topup",
		Reservation: "topup:wf-ask/gas-topup", From: f.Sender, To: f.Broke, Wei: big.NewInt(777)})
	if err != nil {
		t.Fatal(err)
	}
	asked := f.Signer.Asked()
	if len(asked) != 2 {
		t.Fatalf("signer asked %d times, want 2", len(asked))
	}
	data, err := evm.ERC20.Pack("transfer", evmtest.Recipient, big.NewInt(1_234))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		stx                   evm.SignedTx
		step, reservation, to string
		value, data           string
	}{
		{stx, "transfer", "wf-ask", evm.Lower(f.Token), "0", hexutil.Encode(data)},
		{top, "gas-topup", "topup:wf-ask/gas-topup", evm.Lower(f.Broke), "777", ""},
	} {
		a, tx := asked[i], decodeTx(t, c.stx.Raw)
		if a.Chain != evmtest.ChainName || a.ChainID != evmtest.SimChainID || a.WorkflowID != "wf-ask" || a.Step != c.step ||
			a.Attempt != 0 || a.Reservation != c.reservation || a.From != evm.Lower(f.Sender) {
			t.Fatalf("request %d: %+v", i, a)
		}
		if a.Tx.To != c.to || a.Tx.Value != c.value || a.Tx.Data != c.data || a.Tx.Nonce != uint64(i) ||
			a.Tx.Gas != tx.Gas() || a.Tx.TipCap != tx.GasTipCap().String() || a.Tx.FeeCap != tx.GasFeeCap().String() {
			t.Fatalf("request %d asks for %+v; stored nonce %d gas %d tip %s fee cap %s", i, a.Tx, tx.Nonce(), tx.Gas(),
				tx.GasTipCap(), tx.GasFeeCap())
		}
	}
}

// lyingSigner answers every request with a transaction other than the one
// asked: lie rewrites the request before key signs it.
type lyingSigner struct {
	key *ecdsa.PrivateKey
	lie func(r *signerapi.SignRequest)
}

func (l lyingSigner) Sign(_ context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error) {
	l.lie(&req)
	return evmtest.SignLocally(l.key, req)
}

// TestSignerStoresOnlyWhatItAskedFor: a signer that answers with another
// recipient, nonce, value, fee or chain, or with a signature of another
// key, is not believed: nothing is stored and the error says what differs.
// It is no refusal (which would fail the payment): the step is retried,
// and its intent keeps its nonce for the retry, which an honest signer then
// signs on that nonce.
func TestSignerStoresOnlyWhatItAskedFor(t *testing.T) {
	f := newChainFixture(t)
	sender, other := evmtest.MustKey(t, evmtest.SenderKeyHex), evmtest.MustKey(t, evmtest.BrokeKeyHex)
	thief := "0x00000000000000000000000000000000000bad01"
	for _, c := range []struct {
		name, says string
		key        *ecdsa.PrivateKey
		lie        func(r *signerapi.SignRequest)
	}{
		{"another recipient", "recipient", sender, func(r *signerapi.SignRequest) { r.Tx.To = thief }},
		{"another token call", "data", sender, func(r *signerapi.SignRequest) {
			r.Tx.Data = strings.Replace(r.Tx.Data, strings.TrimPrefix(evm.Lower(evmtest.Recipient), "0x"), thief[2:], 1)
		}},
		{"another nonce", "nonce", sender, func(r *signerapi.SignRequest) { r.Tx.Nonce += 7 }},
		{"a value", "value", sender, func(r *signerapi.SignRequest) { r.Tx.Value = "1" }},
		{"a higher fee cap", "fee cap", sender, func(r *signerapi.SignRequest) { r.Tx.FeeCap += "0" }},
		{"another chain", "chain id", sender, func(r *signerapi.SignRequest) { r.ChainID++ }},
		{"another key", "sender", other, func(*signerapi.SignRequest) {}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bc := f.BroadcasterWith(f.Client, lyingSigner{key: c.key, lie: c.lie}, evmtest.MaxFeeWei, 0)
			req := f.Request("wf-lie-"+strings.ReplaceAll(c.name, " ", "-"), 5)
			_, err := bc.Signer.SignTransfer(f.Ctx, req)
			if err == nil || !strings.Contains(err.Error(), "other than the one asked") || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, want the signer's answer refused for its %s", err, c.says)
			}
			if errors.Is(err, chain.ErrSignerRefused) {
				t.Fatalf("a lying signer reads as a refusal (the payment would fail): %v", err)
			}
			if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); n != 0 {
				t.Fatalf("%d rows stored from a lying signer", n)
			}
		})
	}
	// Each lie's step holds its nonce (0..6, in order) for its retry: the
	// first honest transfer has nonce 7, and a lied step retried with an
	// honest signer is signed on the nonce its intent took.
	stx, err := f.BC.Signer.SignTransfer(f.Ctx, f.Request("wf-honest", 5))
	if err != nil || stx.Nonce != 7 {
		t.Fatalf("honest transfer after the lies: nonce %d, %v; want nonce 7", stx.Nonce, err)
	}
	retried, err := f.BC.Signer.SignTransfer(f.Ctx, f.Request("wf-lie-another-recipient", 5))
	if err != nil || retried.Nonce != 0 || retried.Replayed {
		t.Fatalf("the first lied step retried: %+v, %v; want it signed on its nonce 0", retried, err)
	}
}

// fakeSignerd serves the signer's API on a Unix socket, answering every
// sign request with status and body (or, status 0, signing it with the
// fixture's keys), and returns a client of it.
func fakeSignerd(t *testing.T, f *chainFixture, status int, body signerapi.Error) *signerapi.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "signerd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req signerapi.SignRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.URL.Path != signerapi.PathSign {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if status == 0 {
			resp, err := f.Signer.Sign(r.Context(), req)
			if err != nil {
				t.Errorf("fixture signer: %v", err)
			}
			json.NewEncoder(w).Encode(resp)
			return
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return signerapi.NewClient(sock)
}

// TestSignerRefusalIsFinalUnavailableIsRetried: through the signer's
// client, a refusal (refused, unknown key, bad request) is
// chain.ErrSignerRefused with the signer's reason, and its intent is marked
// refused (its nonce is the healer's to fill); a signer that does not
// answer, or fails on its side, is signerapi.ErrUnavailable, which is
// retried: its intent stays open, and the retry asks for the same
// transaction on the same nonce. Either way no transaction is stored. A
// refused replacement stores nothing either.
func TestSignerRefusalIsFinalUnavailableIsRetried(t *testing.T) {
	f := newChainFixture(t)
	reason := "reservation wf-refused holds 5 USDT for 0xabc, not 6 USDT for 0xdef"
	for _, c := range []struct {
		name    string
		client  *signerapi.Client
		refused bool
		says    string
	}{
		{"refused", fakeSignerd(t, f, http.StatusForbidden, signerapi.Error{Code: signerapi.CodeRefused, Message: reason}),
			true, reason},
		{"unknown key", fakeSignerd(t, f, http.StatusNotFound, signerapi.Error{Code: signerapi.CodeUnknownKey,
			Message: "no key for 0xabc"}), true, "no key for 0xabc"},
		{"bad request", fakeSignerd(t, f, http.StatusBadRequest, signerapi.Error{Code: signerapi.CodeBadRequest,
			Message: "value is not a decimal"}), true, "value is not a decimal"},
		{"its database down", fakeSignerd(t, f, http.StatusServiceUnavailable, signerapi.Error{Code: signerapi.CodeInternal,
			Message: "database unavailable"}), false, "database unavailable"},
		{"not running", signerapi.NewClient(filepath.Join(t.TempDir(), "none.sock")), false, "unavailable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bc := f.BroadcasterWith(f.Client, c.client, evmtest.MaxFeeWei, 0)
			req := f.Request("wf-"+strings.ReplaceAll(c.name, " ", "-"), 6)
			_, err := bc.Signer.SignTransfer(f.Ctx, req)
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, want an error saying %q", err, c.says)
			}
			if got := errors.Is(err, chain.ErrSignerRefused); got != c.refused {
				t.Fatalf("refusal %v, want %v: %v", got, c.refused, err)
			}
			if !c.refused && !errors.Is(err, signerapi.ErrUnavailable) {
				t.Fatalf("got %v, want ErrUnavailable", err)
			}
			if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); n != 0 {
				t.Fatalf("%d rows stored", n)
			}
			want := "open"
			if c.refused {
				want = "refused"
			}
			if n := f.Count("SELECT COUNT(*) FROM sign_intents WHERE workflow_id=? AND state=?", req.WorkflowID, want); n != 1 {
				t.Fatalf("no %s intent for %s", want, req.WorkflowID)
			}
		})
	}
	bc := f.BroadcasterWith(f.Client, fakeSignerd(t, f, 0, signerapi.Error{}), evmtest.MaxFeeWei, 0) // one that signs
	first, err := bc.Signer.SignTransfer(f.Ctx, f.Request("wf-after", 6))
	if err != nil || first.Nonce != 5 || first.From != f.Sender {
		t.Fatalf("transfer after the failures: %+v, %v; want nonce 5 (0..4 held by their intents)", first, err)
	}
	// The unavailable signer's step, retried: signed on the nonce its intent took.
	retried, err := bc.Signer.SignTransfer(f.Ctx, f.Request("wf-its-database-down", 6))
	if err != nil || retried.Nonce != 3 {
		t.Fatalf("retry after the signer was unavailable: %+v, %v; want nonce 3", retried, err)
	}

	// A replacement the signer refuses: nothing stored, the original stands.
	stuck := f.SendStuck(f.Request("wf-replace-refused", 8))
	refusing := f.BroadcasterWith(f.Client, fakeSignerd(t, f, http.StatusForbidden,
		signerapi.Error{Code: signerapi.CodeRefused, Message: "reservation wf-replace-refused is released"}), evmtest.MaxFeeWei, 0)
	if _, err := refusing.Sender.Replace(f.Ctx, "wf-replace-refused", "transfer", 1); !errors.Is(err, chain.ErrSignerRefused) ||
		!strings.Contains(err.Error(), "is released") {
		t.Fatalf("refused replacement: %v, want ErrSignerRefused with the reason", err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-replace-refused'"); n != 1 {
		t.Fatalf("%d attempts stored, want the original only", n)
	}
	if latest, err := f.BC.Store.Stored(f.Ctx, "wf-replace-refused", "transfer"); err != nil || latest.Hash != stuck.Hash {
		t.Fatalf("latest attempt %s (%v), want the original %s", latest.Hash.Hex(), err, stuck.Hash.Hex())
	}
}

// TestSignerRefusalOfAStepStoredMeanwhile: when the signer refuses a step
// because another call for it was signed first (on another nonce) and that
// call stored it meanwhile, the step's stored transfer is the answer, not
// the refusal: the step has its one transfer.
func TestSignerRefusalOfAStepStoredMeanwhile(t *testing.T) {
	f := newChainFixture(t)
	req := f.Request("wf-raced", 4)
	winner := f.SignedAt(40, 2_000_000_000) // the other call's transfer, on its nonce
	racing := signerFunc(func(ctx context.Context, _ signerapi.SignRequest) (signerapi.SignResponse, error) {
		if _, err := f.BC.Store.Insert(ctx, nil, req.WorkflowID, req.Step, 0, f.Sender, winner); err != nil {
			t.Errorf("storing the other call's transfer: %v", err)
		}
		return signerapi.SignResponse{}, &signerapi.Error{Code: signerapi.CodeRefused,
			Message: "step wf-raced/transfer attempt 0 was signed for another transaction"}
	})
	bc := f.BroadcasterWith(f.Client, racing, evmtest.MaxFeeWei, 0)
	stx, err := bc.Signer.SignTransfer(f.Ctx, req)
	if err != nil || !stx.Replayed || stx.Hash != winner.Hash() {
		t.Fatalf("got %+v, %v; want the stored %s, replayed", stx, err, winner.Hash().Hex())
	}
	// Refused with nothing stored: the refusal stands.
	refusing := f.BroadcasterWith(f.Client, signerFunc(func(context.Context, signerapi.SignRequest) (signerapi.SignResponse, error) {
		return signerapi.SignResponse{}, &signerapi.Error{Code: signerapi.CodeRefused, Message: "no"}
	}), evmtest.MaxFeeWei, 0)
	if _, err := refusing.Signer.SignTransfer(f.Ctx, f.Request("wf-refused-alone", 4)); !errors.Is(err, chain.ErrSignerRefused) {
		t.Fatalf("got %v, want ErrSignerRefused", err)
	}
}

// signerFunc is a send.TxSigner.
type signerFunc func(ctx context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error)

func (f signerFunc) Sign(ctx context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error) {
	return f(ctx, req)
}
