// Package addresses hands out HD deposit addresses: chain's next address
// index i, the address m/44'/60'/0'/0/i derived from the account xpub alone
// (no private key, no signer), recorded in the ledger's wallets so the
// listener watches it and payflow-signer can sign its sweeps. On a Bitcoin
// chain the address is the native segwit (BIP84) child m/84'/coin'/0'/0/i
// of that chain's account xpub. Both `payflowctl address new` and the HTTP
// API use it.
package addresses

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"payflow/chain/btc"
	"payflow/config"
	"payflow/custody/hd"
	"payflow/ledger"
)

// Address is one allocated deposit address.
type Address struct {
	Chain   string `json:"chain"`
	Address string `json:"address"` // lowercase 0x, or bech32 on a Bitcoin chain
	Index   uint32 `json:"index"`
}

// Errors a caller tells apart.
var (
	// ErrNoAccount: the configuration names no account xpub
	// (custody.account_xpub), so no address can be derived.
	ErrNoAccount = errors.New("no HD account is configured (custody.account_xpub, or btc_chains.<NAME>.account_xpub): deposit addresses cannot be derived")
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
	// btc: each Bitcoin chain's account (nil: no account_xpub configured).
	btc map[string]*btc.Account
}

// AddBTC serves the Bitcoin chain name of network, whose addresses derive
// from the BIP84 account xpub (empty: the chain is served, and Next fails
// with ErrNoAccount).
func (a *Allocator) AddBTC(name, network, xpub string) error {
	name = strings.ToUpper(name)
	if a.btc == nil {
		a.btc = map[string]*btc.Account{}
	}
	a.chains = append(a.chains, name)
	a.btc[name] = nil
	if xpub == "" {
		return nil
	}
	params, err := btc.Params(network)
	if err != nil {
		return fmt.Errorf("btc_chains.%s.network: %w", name, err)
	}
	acct, err := btc.NewAccount(xpub, params)
	if err != nil {
		return fmt.Errorf("btc_chains.%s.account_xpub: %w", name, err)
	}
	a.btc[name] = acct
	return nil
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

// ForConfig returns the allocator of every chain cfg configures: the EVM
// chains from custody.account_xpub, each Bitcoin chain from its own
// account_xpub.
func ForConfig(cfg config.Config, wallets *ledger.Wallets) (*Allocator, error) {
	a, err := New(cfg.Custody.AccountXPub, wallets, cfg.ChainNames())
	if err != nil {
		return nil, err
	}
	for _, name := range cfg.BTCChainNames() {
		b, _ := cfg.BTCChain(name)
		if err := a.AddBTC(name, b.Network, b.AccountXPub); err != nil {
			return nil, err
		}
	}
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
	derive := func(i uint32) (string, error) {
		addr, err := a.account.DepositAddress(i)
		if err != nil {
			return "", err
		}
		return strings.ToLower(addr.Hex()), nil
	}
	acct, isBTC := a.btc[chain]
	if isBTC {
		derive = func(i uint32) (string, error) { return acct.Address(i) }
	}
	if (isBTC && acct == nil) || (!isBTC && a.account == nil) {
		return Address{}, ErrNoAccount
	}
	if len(label) > maxLabel {
		return Address{}, fmt.Errorf("%w: %d characters, at most %d", ErrBadLabel, len(label), maxLabel)
	}
	wl, err := a.wallets.NextHD(ctx, chain, label, derive)
	if err != nil {
		return Address{}, err
	}
	return Address{Chain: wl.Chain, Address: wl.Address, Index: *wl.HDIndex}, nil
}
