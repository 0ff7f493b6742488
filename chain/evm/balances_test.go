package evm_test

import (
	"errors"
	"math/big"
	"testing"

	"payflow/chain"
	"payflow/chain/evm"

	"payflow/chain/evm/evmtest"
)

// TestBalancesReadAndRefuse: balances as minted and funded; a wallet short
// of tokens or ether is refused with the matching sentinel; an address
// without a token contract is an error, not a zero balance.
func TestBalancesReadAndRefuse(t *testing.T) {
	f := newChainFixture(t)
	b, err := evm.NewBalances(f.Client)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.TokenBalance(f.Ctx, f.Token, f.Sender, nil); err != nil || got.Cmp(evmtest.SenderTokens) != 0 {
		t.Fatalf("token balance %v (%v), want %s", got, err, evmtest.SenderTokens)
	}
	if _, err := b.TokenBalance(f.Ctx, evmtest.Recipient, f.Sender, nil); err == nil {
		t.Fatal("balanceOf on an address without code succeeded")
	}
	eth, err := b.NativeBalance(f.Ctx, f.Sender, nil)
	if err != nil || eth.Sign() <= 0 {
		t.Fatalf("native balance %v (%v)", eth, err)
	}

	if err := b.RequireToken(f.Ctx, f.Token, f.Sender, evmtest.SenderTokens); err != nil {
		t.Fatalf("all of the balance: %v", err)
	}
	more := new(big.Int).Add(evmtest.SenderTokens, big.NewInt(1))
	if err := b.RequireToken(f.Ctx, f.Token, f.Sender, more); !errors.Is(err, chain.ErrInsufficientToken) {
		t.Fatalf("one unit more than held: %v, want ErrInsufficientToken", err)
	}
	if err := b.RequireNative(f.Ctx, f.Sender, eth, "gas"); err != nil {
		t.Fatalf("all of the ether: %v", err)
	}
	if err := b.RequireNative(f.Ctx, f.Broke, big.NewInt(1), "gas"); !errors.Is(err, chain.ErrInsufficientGas) {
		t.Fatalf("1 wei from a wallet without ether: %v, want ErrInsufficientGas", err)
	}
}
