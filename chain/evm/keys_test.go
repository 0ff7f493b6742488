package evm_test

import (
	"context"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"payflow/chain/evm"
	"payflow/chain/evm/evmtest"
	"payflow/ledger"
)

// TestKeysRoundTrip: an imported key is stored under its address, sealed,
// and opens as the same key; importing it again keeps the first row.
func TestKeysRoundTrip(t *testing.T) {
	ctx, db := context.Background(), evmtest.TestDB(t)
	sealer, err := ledger.NewKeySealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	keys := evm.Keys{Wallets: ledger.NewWallets(db, sealer)}
	key := evmtest.MustKey(t, evmtest.SenderKeyHex)
	wl, err := keys.Import(ctx, "ETH", ledger.KindHot, "hot", key)
	if err != nil {
		t.Fatal(err)
	}
	if want := evm.Lower(crypto.PubkeyToAddress(key.PublicKey)); wl.Address != want || !wl.HasKey {
		t.Fatalf("stored %+v, want address %s with its key", wl, want)
	}
	if again, err := keys.Import(ctx, "ETH", ledger.KindHot, "again", key); err != nil || again.Label != "hot" {
		t.Fatalf("second import: %+v (%v)", again, err)
	}
	got, err := keys.Key(ctx, "ETH", wl.Address)
	if err != nil || !got.Equal(key) {
		t.Fatalf("opened key differs (%v)", err)
	}
	created, err := keys.Create(ctx, "ETH", ledger.KindDeposit, "d")
	if err != nil || created.Address == wl.Address || !created.HasKey {
		t.Fatalf("created %+v (%v)", created, err)
	}
}
