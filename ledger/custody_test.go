package ledger_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"payflow/ledger"
)

// hdAddr is a stand-in derivation: address i of an account.
func hdAddr(i uint32) (string, error) { return fmt.Sprintf("0x%040x", 0xd0000+int(i)), nil }

// TestNextHDGivesConcurrentCallersDistinctIndexes: callers racing for the
// next deposit address each get their own index, 0 to n-1 with no gap, each
// stored as a deposit wallet whose key the signer holds; another chain counts
// its own indexes.
func TestNextHDGivesConcurrentCallersDistinctIndexes(t *testing.T) {
	l, _ := newLedger(t)
	w := ledger.NewWallets(l.DB(), nil)
	const n = 24
	var wg sync.WaitGroup
	got := make([]ledger.Wallet, n)
	errs := make([]error, n)
	for c := range n {
		wg.Go(func() { got[c], errs[c] = w.NextHD(ctx, chainETH, fmt.Sprintf("customer-%d", c), hdAddr) })
	}
	wg.Wait()
	var idx []int
	for c := range n {
		if errs[c] != nil {
			t.Fatalf("caller %d: %v", c, errs[c])
		}
		wl := got[c]
		if wl.HDIndex == nil {
			t.Fatalf("caller %d got %+v without an index", c, wl)
		}
		want, _ := hdAddr(*wl.HDIndex)
		if wl.Address != want || wl.Kind != ledger.KindDeposit || wl.KeyHolder != ledger.KeySigner || !wl.HasKey ||
			wl.Label != fmt.Sprintf("customer-%d", c) || wl.Chain != chainETH {
			t.Fatalf("caller %d got %+v: want deposit %s held by the signer", c, wl, want)
		}
		idx = append(idx, int(*wl.HDIndex))
	}
	sort.Ints(idx)
	for i, v := range idx {
		if v != i {
			t.Fatalf("indexes %v: want 0 to %d, each once", idx, n-1)
		}
	}
	bsc, err := w.NextHD(ctx, "BSC", "", hdAddr)
	if err != nil || bsc.HDIndex == nil || *bsc.HDIndex != 0 {
		t.Fatalf("BSC's first = %+v, %v: want index 0", bsc, err)
	}
	next, err := w.NextHD(ctx, chainETH, "", hdAddr)
	if err != nil || *next.HDIndex != n {
		t.Fatalf("ETH's next = %+v, %v: want index %d", next, err, n)
	}
}

// TestNextHDRefusesAnAddressStoredAsAnotherWallet: an index whose address is
// already a wallet of its own (a key, no index) is not handed out as new.
func TestNextHDRefusesAnAddressStoredAsAnotherWallet(t *testing.T) {
	l, _ := newLedger(t)
	w := ledger.NewWallets(l.DB(), nil)
	a0, _ := hdAddr(0)
	if _, err := w.Register(ctx, chainETH, ledger.KindHot, "hot", a0); err != nil {
		t.Fatal(err)
	}
	_, err := w.NextHD(ctx, chainETH, "", hdAddr)
	if err == nil || !strings.Contains(err.Error(), "stored already as another wallet") {
		t.Fatalf("NextHD over a stored address: %v", err)
	}
	failing := func(uint32) (string, error) { return "", errors.New("no xpub") }
	if _, err := w.NextHD(ctx, chainETH, "", failing); err == nil || !strings.Contains(err.Error(), "no xpub") {
		t.Fatalf("NextHD with a failing derivation: %v", err)
	}
}

// TestRegisterAndHandOver: a registered wallet is the signer's and keeps
// no sealed key; registering it again (or on a second chain) is idempotent;
// handing over a legacy wallet drops its sealed key and takes it out of
// MasterKeyed; unknown wallets and kinds are refused.
func TestRegisterAndHandOver(t *testing.T) {
	l, db := newLedger(t)
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	sealer, err := ledger.NewKeySealer(master)
	if err != nil {
		t.Fatal(err)
	}
	w := ledger.NewWallets(db, sealer)

	hot, err := w.Register(ctx, chainETH, ledger.KindHot, "hot", strings.ToUpper(addr(1)))
	if err != nil || hot.Address != addr(1) || hot.KeyHolder != ledger.KeySigner || !hot.HasKey || hot.HDIndex != nil {
		t.Fatalf("Register = %+v, %v", hot, err)
	}
	again, err := w.Register(ctx, chainETH, ledger.KindDeposit, "other", addr(1))
	if err != nil || again != hot {
		t.Fatalf("Register again = %+v, %v: want the stored %+v", again, err, hot)
	}
	if bsc, err := w.Register(ctx, "BSC", ledger.KindHot, "hot", addr(1)); err != nil || bsc.Chain != "BSC" || bsc.KeyHolder != ledger.KeySigner {
		t.Fatalf("Register on BSC = %+v, %v", bsc, err)
	}
	if _, err := w.Register(ctx, chainETH, ledger.KindCold, "c", addr(2)); !errors.Is(err, ledger.ErrColdWallet) {
		t.Fatalf("Register of kind cold: %v, want ErrColdWallet", err)
	}
	if _, err := w.Register(ctx, chainETH, "vault", "c", addr(2)); err == nil || !strings.Contains(err.Error(), "unknown wallet kind") {
		t.Fatalf("Register of kind vault: %v", err)
	}

	// Two legacy wallets, one on each chain, and a watch-only one.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	for _, c := range []string{chainETH, "BSC"} {
		if _, err := w.Store(ctx, c, ledger.KindDeposit, "user-1", addr(3), key); err != nil {
			t.Fatal(err)
		}
	}
	addWallet(t, l, chainETH, addr(4), "deposit", "watch", false)
	legacy, err := w.MasterKeyed(ctx)
	if err != nil || len(legacy) != 2 || legacy[0].Chain != chainETH || legacy[1].Chain != "BSC" ||
		legacy[0].Address != addr(3) || legacy[0].KeyHolder != ledger.KeyMaster {
		t.Fatalf("MasterKeyed = %+v, %v: want user-1 on ETH then BSC", legacy, err)
	}
	if plain, err := w.Open(ctx, chainETH, addr(3)); err != nil || !slices.Equal(plain, key) {
		t.Fatalf("opening the legacy key: %v", err)
	}

	if err := w.HandOver(ctx, chainETH, addr(3)); err != nil {
		t.Fatal(err)
	}
	if err := w.HandOver(ctx, chainETH, addr(3)); err != nil {
		t.Fatalf("second HandOver: %v", err)
	}
	var sealed []byte
	var holder string
	if err := db.QueryRowContext(ctx, "SELECT enc_key, key_holder FROM wallets WHERE chain=? AND address=?", chainETH, addr(3)).
		Scan(&sealed, &holder); err != nil || sealed != nil || holder != ledger.KeySigner {
		t.Fatalf("handed over row: enc_key %x, key_holder %q, %v", sealed, holder, err)
	}
	if _, err := w.Open(ctx, chainETH, addr(3)); !errors.Is(err, ledger.ErrWalletNotFound) {
		t.Fatalf("opening a handed over key: %v", err)
	}
	legacy, err = w.MasterKeyed(ctx)
	if err != nil || len(legacy) != 1 || legacy[0].Chain != "BSC" {
		t.Fatalf("MasterKeyed after one hand-over = %+v, %v", legacy, err)
	}
	if err := w.HandOver(ctx, chainETH, addr(9)); !errors.Is(err, ledger.ErrWalletNotFound) {
		t.Fatalf("HandOver of an unknown wallet: %v", err)
	}
	// Registering the legacy BSC wallet hands it over too.
	if wl, err := w.Register(ctx, "BSC", ledger.KindHot, "x", addr(3)); err != nil || wl.KeyHolder != ledger.KeySigner ||
		wl.Kind != ledger.KindDeposit || wl.Label != "user-1" {
		t.Fatalf("Register over a legacy wallet = %+v, %v", wl, err)
	}
	if legacy, err := w.MasterKeyed(ctx); err != nil || len(legacy) != 0 {
		t.Fatalf("MasterKeyed at the end = %+v, %v", legacy, err)
	}
}

// TestRegisterHD: a wallet of any kind registered as the signer's HD child
// keeps its index; registering it again is harmless; an index taken by
// another address, or an address stored at another index, is refused; the
// next HD deposit address comes after the registered indexes.
func TestRegisterHD(t *testing.T) {
	l, _ := newLedger(t)
	w := ledger.NewWallets(l.DB(), nil)
	const chain = "BTC"
	coll := "sb1q" + strings.Repeat("c", 38)
	hot := "sb1q" + strings.Repeat("h", 38)
	got, err := w.RegisterHD(ctx, chain, ledger.KindCollection, "collection", coll, 0)
	if err != nil || got.HDIndex == nil || *got.HDIndex != 0 || got.Kind != ledger.KindCollection || got.KeyHolder != "signer" {
		t.Fatalf("RegisterHD: %+v, %v", got, err)
	}
	if again, err := w.RegisterHD(ctx, chain, ledger.KindCollection, "collection", coll, 0); err != nil || again.Address != got.Address || *again.HDIndex != 0 {
		t.Fatalf("again: %+v, %v", again, err)
	}
	if _, err := w.RegisterHD(ctx, chain, ledger.KindHot, "hot", hot, 0); err == nil {
		t.Fatal("index 0 taken by another address: accepted")
	}
	if _, err := w.RegisterHD(ctx, chain, ledger.KindCollection, "collection", coll, 1); err == nil {
		t.Fatal("an address stored at index 0 registered at 1: accepted")
	}
	if _, err := w.RegisterHD(ctx, chain, ledger.KindHot, "hot", hot, 1); err != nil {
		t.Fatal(err)
	}
	next, err := w.NextHD(ctx, chain, "", func(i uint32) (string, error) { return fmt.Sprintf("sb1q%038d", i), nil })
	if err != nil || *next.HDIndex != 2 {
		t.Fatalf("NextHD after 0 and 1: %+v, %v", next, err)
	}
}

// TestRegisterColdIsWatchOnly: a chain's cold address is registered as a
// watch-only wallet of kind cold, again without change; no key can be given
// to it afterwards (Register, Store, HandOver), and an address that already
// is another wallet of the chain is not made cold.
func TestRegisterColdIsWatchOnly(t *testing.T) {
	_, db := newLedger(t)
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	sealer, err := ledger.NewKeySealer(master)
	if err != nil {
		t.Fatal(err)
	}
	w := ledger.NewWallets(db, sealer)
	cold, err := w.RegisterCold(ctx, chainETH, strings.ToUpper(addr(7)))
	if err != nil || cold.Address != addr(7) || cold.Kind != ledger.KindCold || cold.KeyHolder != ledger.KeyNone || cold.HasKey {
		t.Fatalf("RegisterCold = %+v, %v", cold, err)
	}
	if again, err := w.RegisterCold(ctx, chainETH, addr(7)); err != nil || again != cold {
		t.Fatalf("RegisterCold again = %+v, %v", again, err)
	}
	if _, err := w.Register(ctx, chainETH, ledger.KindHot, "hot", addr(7)); !errors.Is(err, ledger.ErrColdWallet) {
		t.Errorf("Register over the cold wallet: %v, want ErrColdWallet", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if _, err := w.Store(ctx, chainETH, ledger.KindHot, "hot", addr(7), key); !errors.Is(err, ledger.ErrColdWallet) {
		t.Errorf("Store over the cold wallet: %v, want ErrColdWallet", err)
	}
	if err := w.HandOver(ctx, chainETH, addr(7)); !errors.Is(err, ledger.ErrColdWallet) {
		t.Errorf("HandOver of the cold wallet: %v, want ErrColdWallet", err)
	}
	if got, err := w.Get(ctx, chainETH, addr(7)); err != nil || got != cold {
		t.Errorf("the cold wallet became %+v, %v", got, err)
	}
	if _, err := w.Register(ctx, chainETH, ledger.KindHot, "hot", addr(8)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.RegisterCold(ctx, chainETH, addr(8)); !errors.Is(err, ledger.ErrColdWallet) {
		t.Errorf("RegisterCold of the hot wallet: %v, want ErrColdWallet", err)
	}
}
