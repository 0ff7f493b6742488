package addresses_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"payflow/custody/addresses"
	"payflow/custody/hd"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

var ctx = context.Background()

// testMnemonic is BIP39's all-"abandon" test mnemonic: a test key only.
const testMnemonic = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

// account returns the test mnemonic's master key and its account xpub.
func account(t *testing.T) (*hd.Key, string) {
	t.Helper()
	seed, err := hd.Seed(testMnemonic, "")
	if err != nil {
		t.Fatal(err)
	}
	master, err := hd.NewMasterKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := master.Derive(hd.AccountPath)
	if err != nil {
		t.Fatal(err)
	}
	return master, acct.XPub()
}

// TestNextDerivesWhatTheMnemonicSigns: the addresses handed out are the
// mnemonic's children m/44'/60'/0'/0/i, indexes counted per chain, and they
// are deposit wallets the signer holds; an unknown chain, a missing xpub, an
// xprv and an overlong label are refused.
func TestNextDerivesWhatTheMnemonicSigns(t *testing.T) {
	db := stacktest.TestDB(t, "addresses")
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	wallets := ledger.NewWallets(db, nil)
	master, xpub := account(t)
	a, err := addresses.New(xpub, wallets, []string{"ETH", "BSC"})
	if err != nil || !a.Configured() {
		t.Fatalf("New: %v", err)
	}
	for want := range uint32(3) {
		got, err := a.Next(ctx, "ETH", "customer")
		if err != nil {
			t.Fatal(err)
		}
		child, err := master.Derive(hd.DepositPath(want))
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := child.Address()
		if got.Index != want || got.Chain != "ETH" || got.Address != strings.ToLower(addr.Hex()) {
			t.Fatalf("address %d = %+v, want %s (m/44'/60'/0'/0/%d)", want, got, strings.ToLower(addr.Hex()), want)
		}
		wl, err := wallets.Get(ctx, "ETH", got.Address)
		if err != nil || wl.Kind != ledger.KindDeposit || wl.KeyHolder != ledger.KeySigner || *wl.HDIndex != want || wl.Label != "customer" {
			t.Fatalf("stored wallet %+v, %v", wl, err)
		}
	}
	if got, err := a.Next(ctx, "BSC", ""); err != nil || got.Index != 0 {
		t.Fatalf("BSC's first = %+v, %v", got, err)
	}
	if _, err := a.Next(ctx, "TRON", ""); !errors.Is(err, addresses.ErrUnknownChain) || !strings.Contains(err.Error(), "ETH, BSC") {
		t.Fatalf("unknown chain: %v", err)
	}
	if _, err := a.Next(ctx, "ETH", strings.Repeat("x", 65)); err == nil {
		t.Fatal("a 65-character label was accepted")
	}

	none, err := addresses.New("", wallets, []string{"ETH"})
	if err != nil || none.Configured() {
		t.Fatalf("New without an xpub: %v", err)
	}
	if _, err := none.Next(ctx, "ETH", ""); !errors.Is(err, addresses.ErrNoAccount) {
		t.Fatalf("Next without an xpub: %v", err)
	}
	xprv, _ := master.XPrv()
	if _, err := addresses.New(xprv, wallets, []string{"ETH"}); !errors.Is(err, hd.ErrNotPublic) || strings.Contains(err.Error(), xprv) {
		t.Fatalf("New with an xprv: %v", err)
	}
	if _, err := addresses.New(master.XPub(), wallets, []string{"ETH"}); !errors.Is(err, hd.ErrNotAccount) {
		t.Fatalf("New with the master xpub: %v", err)
	}
}
