package evm_test

import (
	"errors"
	"math/big"
	"testing"

	"payflow/chain"
	"payflow/chain/evm"
)

// TestBalancesReadAndRefuse: balances as minted and funded; a wallet short
// of tokens or ether is refused with the matching sentinel; an address
// without a token contract is an error, not a zero balance.
func TestBalancesReadAndRefuse(t *testing.T) {
	f := newChainFixture(t)
	b, err := evm.NewBalances(f.client)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.TokenBalance(f.ctx, f.token, f.sender, nil); err != nil || got.Cmp(senderTokens) != 0 {
		t.Fatalf("token balance %v (%v), want %s", got, err, senderTokens)
	}
	if _, err := b.TokenBalance(f.ctx, recipient, f.sender, nil); err == nil {
		t.Fatal("balanceOf on an address without code succeeded")
	}
	eth, err := b.NativeBalance(f.ctx, f.sender, nil)
	if err != nil || eth.Sign() <= 0 {
		t.Fatalf("native balance %v (%v)", eth, err)
	}

	if err := b.RequireToken(f.ctx, f.token, f.sender, senderTokens); err != nil {
		t.Fatalf("all of the balance: %v", err)
	}
	more := new(big.Int).Add(senderTokens, big.NewInt(1))
	if err := b.RequireToken(f.ctx, f.token, f.sender, more); !errors.Is(err, chain.ErrInsufficientToken) {
		t.Fatalf("one unit more than held: %v, want ErrInsufficientToken", err)
	}
	if err := b.RequireNative(f.ctx, f.sender, eth, "gas"); err != nil {
		t.Fatalf("all of the ether: %v", err)
	}
	if err := b.RequireNative(f.ctx, f.broke, big.NewInt(1), "gas"); !errors.Is(err, chain.ErrInsufficientGas) {
		t.Fatalf("1 wei from a wallet without ether: %v, want ErrInsufficientGas", err)
	}
}
