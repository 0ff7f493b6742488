package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"payflow/chain/evm"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// fakeSigner stands in for payflow-signer's key routes: it keeps the keys
// it is given by address and, like a signer that holds a key already,
// refuses a second import of the same key.
type fakeSigner struct {
	mu      sync.Mutex
	keys    map[string][]byte // address -> private key
	imports int
}

func newFakeSigner() *fakeSigner { return &fakeSigner{keys: map[string][]byte{}} }

func (f *fakeSigner) NewKey(_ context.Context, backend string) (signerapi.KeyInfo, error) {
	k, err := crypto.GenerateKey()
	if err != nil {
		return signerapi.KeyInfo{}, err
	}
	addr := evm.Lower(crypto.PubkeyToAddress(k.PublicKey))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[addr] = crypto.FromECDSA(k)
	return signerapi.KeyInfo{Address: addr, Backend: backend}, nil
}

func (f *fakeSigner) Import(_ context.Context, privateKeyHex string) (signerapi.KeyInfo, error) {
	k, err := crypto.HexToECDSA(strings.TrimPrefix(privateKeyHex, "0x"))
	if err != nil {
		return signerapi.KeyInfo{}, &signerapi.Error{Code: signerapi.CodeBadRequest, Message: "not a key"}
	}
	addr := evm.Lower(crypto.PubkeyToAddress(k.PublicKey))
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.keys[addr]; dup {
		return signerapi.KeyInfo{}, &signerapi.Error{Code: signerapi.CodeBadRequest, Message: addr + " is held already"}
	}
	f.imports++
	f.keys[addr] = crypto.FromECDSA(k)
	return signerapi.KeyInfo{Address: addr, Backend: signerapi.BackendEnvelope}, nil
}

func (f *fakeSigner) Status(context.Context) (signerapi.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st signerapi.Status
	for a := range f.keys {
		st.Keys = append(st.Keys, signerapi.KeyInfo{Address: a, Backend: signerapi.BackendEnvelope})
	}
	return st, nil
}

// TestWalletMigrateMovesEachKeyOnce: every wallet sealed under the legacy
// master key is handed over (its sealed key dropped), its key now the
// signer's, the same address on two chains imported once; a key the signer
// held already (an interrupted run) counts as moved; a second run moves
// nothing; and a wrong master key moves nothing and says so.
func TestWalletMigrateMovesEachKeyOnce(t *testing.T) {
	ctx := context.Background()
	db := stacktest.TestDB(t, "ctl")
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	masterHex := randomHex(32)
	sealer, err := legacySealer(masterHex)
	if err != nil {
		t.Fatal(err)
	}
	legacy := ledger.NewWallets(db, sealer)
	plain := map[string][]byte{}
	for _, label := range []string{"hot", "user-1", "user-2"} {
		k, _ := crypto.GenerateKey()
		addr := evm.Lower(crypto.PubkeyToAddress(k.PublicKey))
		plain[addr] = crypto.FromECDSA(k)
		for _, chain := range []string{"ETH", "BSC"} {
			if _, err := legacy.Store(ctx, chain, ledger.KindDeposit, label, addr, plain[addr]); err != nil {
				t.Fatal(err)
			}
		}
	}
	sc := newFakeSigner()
	// An interrupted run imported user-2's key and handed nothing over.
	user2, err := ledger.NewWallets(db, nil).ByLabel(ctx, "ETH", "user-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Import(ctx, hex.EncodeToString(plain[user2.Address])); err != nil {
		t.Fatal(err)
	}

	// A wrong master key opens nothing, and nothing is handed over.
	wrong, _ := legacySealer(randomHex(32))
	if _, err := migrateWallets(ctx, ledger.NewWallets(db, wrong), sc, &bytes.Buffer{}); !errors.Is(err, ledger.ErrKeyDecrypt) {
		t.Fatalf("migrate with a wrong master key: %v", err)
	}
	if left, _ := ledger.NewWallets(db, nil).MasterKeyed(ctx); len(left) != 6 {
		t.Fatalf("a failed migrate handed over %d wallets", 6-len(left))
	}

	var log bytes.Buffer
	sum, err := migrateWallets(ctx, ledger.NewWallets(db, sealer), sc, &log)
	if err != nil {
		t.Fatal(err)
	}
	if sum != (migrateSummary{Wallets: 6, Imported: 2, AlreadyHeld: 1}) {
		t.Fatalf("summary %+v: want 6 wallets, 2 keys imported, 1 already held", sum)
	}
	if strings.Contains(log.String(), masterHex) {
		t.Fatal("the log shows the master key")
	}
	for addr, k := range plain {
		if !bytes.Equal(sc.keys[addr], k) {
			t.Errorf("the signer does not hold the key of %s", addr)
		}
		if strings.Contains(log.String(), hex.EncodeToString(k)) {
			t.Errorf("the log shows the key of %s", addr)
		}
	}
	var sealedLeft, notSigner int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(enc_key), SUM(key_holder <> 'signer') FROM wallets").Scan(&sealedLeft, &notSigner); err != nil ||
		sealedLeft != 0 || notSigner != 0 {
		t.Fatalf("after migrate: %d sealed keys left, %d wallets not the signer's (%v)", sealedLeft, notSigner, err)
	}

	imports := sc.imports
	again, err := migrateWallets(ctx, ledger.NewWallets(db, sealer), sc, &bytes.Buffer{})
	if err != nil || again != (migrateSummary{}) || sc.imports != imports {
		t.Fatalf("second run: %+v, %v, %d more imports: want nothing moved", again, err, sc.imports-imports)
	}
	if !strings.Contains(again.String(), "nothing to move") {
		t.Fatalf("second run says %q", again)
	}
}

// TestImportKeyChecksTheSignersAddress: `wallet import` hands the key to
// the signer and gets its address back; a line that is not a key is
// refused before the signer is asked; a key the signer holds already is
// taken as imported.
func TestImportKeyChecksTheSignersAddress(t *testing.T) {
	ctx := context.Background()
	sc := newFakeSigner()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	raw := crypto.FromECDSA(k)
	want := evm.Lower(crypto.PubkeyToAddress(k.PublicKey))
	for range 2 {
		info, err := importKey(ctx, sc, strings.NewReader("0x"+hex.EncodeToString(raw)+"\n"))
		if err != nil || info.Address != want {
			t.Fatalf("import = %+v, %v: want %s", info, err, want)
		}
	}
	if sc.imports != 1 {
		t.Fatalf("%d imports, want 1", sc.imports)
	}
	if _, err := importKey(ctx, sc, strings.NewReader("not a key\n")); err == nil || sc.imports != 1 {
		t.Fatalf("a bad line: %v", err)
	}
}
