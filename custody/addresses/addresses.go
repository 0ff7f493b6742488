// Package addresses hands out HD deposit addresses: chain's next address
// index i, the address m/44'/60'/0'/0/i derived from the account xpub alone
// (no private key, no signer), recorded in the ledger's wallets so the
// listener watches it and payflow-signer can sign its sweeps. Both
// `payflowctl address new` and the HTTP API use it.
package addresses

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"payflow/custody/hd"
	"payflow/ledger"
)

// Address is one allocated deposit address.
type Address struct {
	Chain   string `json:"chain"`
	Address string `json:"address"` // lowercase 0x
	Index   uint32 `json:"index"`
}

// Errors a caller tells apart.
var (
	// ErrNoAccount: the configuration names no account xpub
	// (custody.account_xpub), so no address can be derived.
	ErrNoAccount = errors.New("no HD account is configured (custody.account_xpub): deposit addresses cannot be derived")
	// ErrUnknownChain: the chain is not one payflow serves.
	ErrUnknownChain = errors.New("unknown chain")
	// ErrBadLabel: a label longer than the wallets table holds.
	ErrBadLabel = errors.New("label too long")
)

// maxLabel is the wallets table's label width.
const maxLabel = 64

// Allocator allocates deposit addresses. Safe for concurrent use.
type Allocator struct {
	account *hd.Account // nil: no xpub configured
	wallets *ledger.Wallets
	chains  []string
}

// New returns an allocator of the chains named for the account xpub
// accountXPub (m/44'/60'/0'). An empty xpub gives an allocator whose Next
// fails with ErrNoAccount; an xpub that does not read as an account's is an
// error now.
func New(accountXPub string, wallets *ledger.Wallets, chains []string) (*Allocator, error) {
	a := &Allocator{wallets: wallets, chains: slices.Clone(chains)}
	if accountXPub == "" {
		return a, nil
	}
	acct, err := hd.NewAccount(accountXPub)
	if err != nil {
		return nil, fmt.Errorf("custody.account_xpub: %w", err)
	}
	a.account = acct
	return a, nil
}

// Configured says whether an account xpub is configured.
func (a *Allocator) Configured() bool { return a.account != nil }

// Next allocates chain's next deposit address, labelled label (at most 64
// characters, may be empty). chain is read in any case. Concurrent calls get
// distinct indexes.
func (a *Allocator) Next(ctx context.Context, chain, label string) (Address, error) {
	chain = strings.ToUpper(strings.TrimSpace(chain))
	if !slices.Contains(a.chains, chain) {
		return Address{}, fmt.Errorf("%w %q: payflow serves %s", ErrUnknownChain, chain, strings.Join(a.chains, ", "))
	}
	if a.account == nil {
		return Address{}, ErrNoAccount
	}
	if len(label) > maxLabel {
		return Address{}, fmt.Errorf("%w: %d characters, at most %d", ErrBadLabel, len(label), maxLabel)
	}
	wl, err := a.wallets.NextHD(ctx, chain, label, func(i uint32) (string, error) {
		addr, err := a.account.DepositAddress(i)
		if err != nil {
			return "", err
		}
		return strings.ToLower(addr.Hex()), nil
	})
	if err != nil {
		return Address{}, err
	}
	return Address{Chain: wl.Chain, Address: wl.Address, Index: *wl.HDIndex}, nil
}
