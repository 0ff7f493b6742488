package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"payflow/internal/sqlrows"
)

// WalletKind is a wallet's role.
type WalletKind string

// Wallet kinds.
const (
	// KindDeposit receives a user's deposits; sweeps collect from it.
	KindDeposit WalletKind = "deposit"
	// KindCollection is where sweeps collect deposits to.
	KindCollection WalletKind = "collection"
	// KindHot pays withdrawals and payments.
	KindHot WalletKind = "hot"
	// KindGas tops deposit wallets up with the native coin their sweeps pay gas with.
	KindGas WalletKind = "gas"
)

// Wallet is a wallet row without its key.
type Wallet struct {
	Chain   string     `json:"chain"`
	Address string     `json:"address"`
	Kind    WalletKind `json:"kind"`
	Label   string     `json:"label"`
	// HasKey says payflow can sign for the wallet: its key is held by the
	// signer, or (until `payflowctl wallet migrate`) sealed under the
	// legacy master key. A watch-only wallet has none.
	HasKey bool `json:"has_key"`
	// KeyHolder is KeyNone, KeyMaster or KeySigner.
	KeyHolder string `json:"key_holder"`
	// HDIndex is the address index i of a deposit address derived at
	// m/44'/60'/0'/0/i from the account xpub; nil for a wallet with a key of
	// its own.
	HDIndex *uint32 `json:"hd_index,omitempty"`
}

// Who holds a wallet's key (Wallet.KeyHolder).
const (
	KeyNone   = "none"   // watch-only
	KeyMaster = "master" // enc_key, sealed under the legacy master key
	KeySigner = "signer" // payflow-signer: a KMS key, an envelope-sealed key or an HD child
)

// Wallets stores wallets and opens their sealed keys for the signer (the
// keys themselves are their chain family's: see evm.Keys).
type Wallets struct {
	db     *sql.DB
	sealer *KeySealer
}

// NewWallets returns the wallet store. sealer may be nil for read-only use.
func NewWallets(db *sql.DB, sealer *KeySealer) *Wallets { return &Wallets{db: db, sealer: sealer} }

// Store stores a wallet's private key, plain in its chain family's
// encoding (see evm.Keys), sealed under the master key for address.
// Storing the same address again keeps the stored row (and key) and returns
// it: the operation is idempotent. The caller clears plain.
func (w *Wallets) Store(ctx context.Context, chain string, kind WalletKind, label, address string, plain []byte) (Wallet, error) {
	if w.sealer == nil {
		return Wallet{}, errors.New("importing a wallet needs the master key")
	}
	addr := norm(address)
	sealed, err := w.sealer.Seal(addr, plain)
	if err != nil {
		return Wallet{}, err
	}
	if _, err := w.db.ExecContext(ctx, `INSERT INTO wallets (chain, address, kind, label, enc_key, key_holder) VALUES (?,?,?,?,?,'master')
		ON DUPLICATE KEY UPDATE key_holder = IF(key_holder = 'none', 'master', key_holder),
		enc_key = IF(key_holder = 'master', COALESCE(enc_key, VALUES(enc_key)), enc_key)`, chain, addr, string(kind), label, sealed); err != nil {
		return Wallet{}, fmt.Errorf("storing wallet %s: %w", addr, err)
	}
	return w.Get(ctx, chain, addr)
}

// Get returns a wallet, or ErrWalletNotFound.
func (w *Wallets) Get(ctx context.Context, chain, address string) (Wallet, error) {
	return w.one(ctx, fmt.Sprintf("%s on %s", address, chain), "wallet "+address,
		"chain=? AND address=?", chain, norm(address))
}

// ByLabel returns chain's wallet labelled label (the dev stack's "hot",
// "user-1", ...), or ErrWalletNotFound. Labels are not unique: of several,
// the first stored is returned.
func (w *Wallets) ByLabel(ctx context.Context, chain, label string) (Wallet, error) {
	return w.one(ctx, fmt.Sprintf("wallet labelled %q on %s", label, chain), fmt.Sprintf("wallet labelled %q", label),
		"chain=? AND label=? ORDER BY id LIMIT 1", chain, label)
}

// one reads the first wallet the condition where (with args) finds. With
// none, it fails with ErrWalletNotFound after notFound; other errors after
// "reading " and what.
func (w *Wallets) one(ctx context.Context, notFound, what, where string, args ...any) (Wallet, error) {
	wl, err := scanWallet(w.db.QueryRowContext(ctx, "SELECT "+walletColumns+" FROM wallets WHERE "+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Wallet{}, fmt.Errorf("%s: %w", notFound, ErrWalletNotFound)
	}
	if err != nil {
		return Wallet{}, fmt.Errorf("reading %s: %w", what, err)
	}
	return wl, nil
}

// walletColumns are the columns scanWallet reads.
const walletColumns = "chain, address, kind, label, key_holder, hd_index"

func scanWallet(row sqlrows.Scanner) (wl Wallet, err error) {
	var hd sql.NullInt64
	if err := row.Scan(&wl.Chain, &wl.Address, (*string)(&wl.Kind), &wl.Label, &wl.KeyHolder, &hd); err != nil {
		return wl, err
	}
	wl.HasKey = wl.KeyHolder != KeyNone
	if hd.Valid {
		i := uint32(hd.Int64)
		wl.HDIndex = &i
	}
	return wl, nil
}

// List returns the wallets of chain, optionally of one kind ("" = all).
func (w *Wallets) List(ctx context.Context, chain string, kind WalletKind) ([]Wallet, error) {
	wallets, err := sqlrows.Collect(ctx, w.db, scanWallet, "SELECT "+walletColumns+
		" FROM wallets WHERE chain=? AND (?='' OR kind=?) ORDER BY id", chain, string(kind), string(kind))
	if err != nil {
		return nil, fmt.Errorf("listing wallets: %w", err)
	}
	return wallets, nil
}

// AddressesAfter pages through chain's wallets in the order they were
// stored: the addresses of at most limit wallets stored after position
// after (0 from the first), and the position of the last one returned
// (after itself when there is none). A listener calls it again with the
// position it got to find the wallets stored since.
func (w *Wallets) AddressesAfter(ctx context.Context, chain string, after int64, limit int) (addresses []string, last int64,
	err error) {
	last = after
	err = sqlrows.Each(ctx, w.db, func(rows sqlrows.Scanner) error {
		var a string
		if err := rows.Scan(&last, &a); err != nil {
			return err
		}
		addresses = append(addresses, a)
		return nil
	}, "SELECT id, address FROM wallets WHERE chain=? AND id > ? ORDER BY id LIMIT ?", chain, after, limit)
	if err != nil {
		return nil, after, fmt.Errorf("listing wallets: %w", err)
	}
	return addresses, last, nil
}

// OfKinds maps the lowercase address of every wallet of chain whose kind is
// one of kinds to that kind's name (the metrics sampler's reading).
func (w *Wallets) OfKinds(ctx context.Context, chain string, kinds []string) (map[string]string, error) {
	out := map[string]string{}
	for _, k := range kinds {
		ws, err := w.List(ctx, chain, WalletKind(k))
		if err != nil {
			return nil, err
		}
		for _, wl := range ws {
			out[strings.ToLower(wl.Address)] = string(wl.Kind)
		}
	}
	return out, nil
}

// KindNames is KindsOf with the kinds as names (the metrics sampler's
// reading).
func (w *Wallets) KindNames(ctx context.Context, chain string, addresses []string) (map[string]string, error) {
	kinds, err := w.KindsOf(ctx, chain, addresses)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(kinds))
	for a, k := range kinds {
		out[a] = string(k)
	}
	return out, nil
}

// KindsOf returns the kind of each of addresses that is a wallet of chain,
// keyed by the lowercase address; addresses payflow holds no wallet for are
// left out. It reads at most kindsPerQuery addresses per query.
func (w *Wallets) KindsOf(ctx context.Context, chain string, addresses []string) (map[string]WalletKind, error) {
	kinds := map[string]WalletKind{}
	for len(addresses) > 0 {
		n := min(len(addresses), kindsPerQuery)
		args := make([]any, 0, n+1)
		args = append(args, chain)
		for _, a := range addresses[:n] {
			args = append(args, norm(a))
		}
		addresses = addresses[n:]
		if err := w.readKinds(ctx, kinds, "SELECT address, kind FROM wallets WHERE chain=? AND address IN (?"+
			strings.Repeat(",?", n-1)+")", args...); err != nil {
			return nil, err
		}
	}
	return kinds, nil
}

// kindsPerQuery bounds the placeholders of one KindsOf query.
const kindsPerQuery = 1000

func (w *Wallets) readKinds(ctx context.Context, into map[string]WalletKind, query string, args ...any) error {
	err := sqlrows.Each(ctx, w.db, func(rows sqlrows.Scanner) error {
		var a, k string
		if err := rows.Scan(&a, &k); err != nil {
			return err
		}
		into[norm(a)] = WalletKind(k)
		return nil
	}, query, args...)
	if err != nil {
		return fmt.Errorf("reading wallet kinds: %w", err)
	}
	return nil
}

// Open opens a wallet's private key, plain in its chain family's encoding,
// for signing. The caller must clear it after the signature, and never log
// or return it.
func (w *Wallets) Open(ctx context.Context, chain, address string) ([]byte, error) {
	if w.sealer == nil {
		return nil, errors.New("opening a wallet key needs the master key")
	}
	addr := norm(address)
	var sealed []byte
	err := w.db.QueryRowContext(ctx, "SELECT enc_key FROM wallets WHERE chain=? AND address=? AND enc_key IS NOT NULL",
		chain, addr).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("key of %s on %s: %w", addr, chain, ErrWalletNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading key of %s: %w", addr, err)
	}
	plain, err := w.sealer.Open(addr, sealed)
	if err != nil {
		return nil, fmt.Errorf("opening key of %s: %w", addr, err)
	}
	return plain, nil
}
