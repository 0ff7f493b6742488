package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"

	"payflow/internal/sqlerr"
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
	// KindCold is a chain's cold wallet: the hot tier's excess is swept to
	// it. payflow never holds its key (key_holder none: watch-only); it is
	// booked and reconciled like every managed wallet.
	KindCold WalletKind = "cold"
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

// Wallets stores wallets and who holds their keys. The legacy keys sealed
// under the master key are opened only to hand them to payflow-signer
// (`payflowctl wallet migrate`); the worker opens none.
type Wallets struct {
	db     *sql.DB
	sealer *KeySealer
}

// NewWallets returns the wallet store. sealer may be nil for read-only use.
func NewWallets(db *sql.DB, sealer *KeySealer) *Wallets { return &Wallets{db: db, sealer: sealer} }

// Store stores a wallet's private key, plain in its chain family's
// encoding (for EVM chains the 32-byte secp256k1 scalar), sealed under the
// master key for address.
// Storing the same address again keeps the stored row (and key) and returns
// it: the operation is idempotent. The caller clears plain.
func (w *Wallets) Store(ctx context.Context, chain string, kind WalletKind, label, address string, plain []byte) (Wallet, error) {
	if w.sealer == nil {
		return Wallet{}, errors.New("importing a wallet needs the master key")
	}
	addr := norm(address)
	if wl, err := w.Get(ctx, chain, addr); err == nil && wl.Kind == KindCold {
		return Wallet{}, fmt.Errorf("%s is %s's cold wallet, whose key payflow must not hold: %w", addr, chain, ErrColdWallet)
	}
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

// Register records a wallet whose key payflow-signer holds: a key the
// signer created (signerapi NewKey) or took over (Import), valid on every
// EVM chain, so the same address may be registered on several chains.
// Registering an address already stored keeps its kind, label and HD index
// and hands its key over to the signer (as HandOver): the caller asserts
// that the signer holds it.
func (w *Wallets) Register(ctx context.Context, chain string, kind WalletKind, label, address string) (Wallet, error) {
	if err := checkKind(kind); err != nil {
		return Wallet{}, err
	}
	addr := norm(address)
	if wl, err := w.Get(ctx, chain, addr); err == nil && wl.Kind == KindCold {
		return Wallet{}, fmt.Errorf("%s is %s's cold wallet, whose key payflow must not hold: %w", addr, chain, ErrColdWallet)
	}
	if _, err := w.db.ExecContext(ctx, `INSERT INTO wallets (chain, address, kind, label, key_holder) VALUES (?,?,?,?,'signer')
		ON DUPLICATE KEY UPDATE key_holder = 'signer', enc_key = NULL`, chain, addr, string(kind), label); err != nil {
		return Wallet{}, fmt.Errorf("registering wallet %s on %s: %w", addr, chain, err)
	}
	return w.Get(ctx, chain, addr)
}

// RegisterHD records a wallet of any kind whose key is the signer's HD
// child at index (a Bitcoin wallet of the dev stack: its collection and hot
// wallets too are children of the account). Registering it again keeps
// the stored row; an address stored at another index, or an index taken by
// another address, is an error.
func (w *Wallets) RegisterHD(ctx context.Context, chain string, kind WalletKind, label, address string, index uint32) (Wallet, error) {
	if err := checkKind(kind); err != nil {
		return Wallet{}, err
	}
	addr := norm(address)
	_, err := w.db.ExecContext(ctx, `INSERT INTO wallets (chain, address, kind, label, key_holder, hd_index)
		VALUES (?,?,?,?,'signer',?)`, chain, addr, string(kind), label, index)
	if err != nil && !sqlerr.IsDuplicateKey(err) {
		return Wallet{}, fmt.Errorf("registering HD wallet %d of %s: %w", index, chain, err)
	}
	wl, gerr := w.Get(ctx, chain, addr)
	if gerr != nil {
		if err != nil {
			return Wallet{}, fmt.Errorf("HD index %d of %s is another address's", index, chain)
		}
		return Wallet{}, gerr
	}
	if wl.HDIndex == nil || *wl.HDIndex != index {
		return Wallet{}, fmt.Errorf("%s of %s is stored already, not as HD wallet %d", addr, chain, index)
	}
	return wl, nil
}

// checkKind refuses a kind the wallets table does not know, and the cold
// kind, whose key payflow never holds (see RegisterCold).
func checkKind(kind WalletKind) error {
	switch kind {
	case KindDeposit, KindCollection, KindHot, KindGas:
		return nil
	case KindCold:
		return fmt.Errorf("a cold wallet's key is never held by payflow: it is registered watch-only from the chain's cold_address: %w",
			ErrColdWallet)
	}
	return fmt.Errorf("unknown wallet kind %q: want deposit, collection, hot or gas", kind)
}

// RegisterCold records address as chain's cold wallet: kind cold,
// watch-only (key_holder none), labelled "cold". Registering it again
// changes nothing. An address that is already another wallet of the chain
// (one payflow may hold the key of) is refused with ErrColdWallet: a cold
// wallet's key is never payflow's. A chain may have several cold wallets
// (one cold_address after another); each stays booked and reconciled.
func (w *Wallets) RegisterCold(ctx context.Context, chain, address string) (Wallet, error) {
	addr := norm(address)
	if _, err := w.db.ExecContext(ctx, `INSERT IGNORE INTO wallets (chain, address, kind, label, key_holder)
		VALUES (?,?,'cold','cold','none')`, chain, addr); err != nil {
		return Wallet{}, fmt.Errorf("registering the cold wallet %s on %s: %w", addr, chain, err)
	}
	wl, err := w.Get(ctx, chain, addr)
	if err != nil {
		return Wallet{}, err
	}
	if wl.Kind != KindCold || wl.KeyHolder != KeyNone {
		return Wallet{}, fmt.Errorf("%s is %s's %s wallet (key held by %s), not a cold wallet: %w", addr, chain, wl.Kind,
			wl.KeyHolder, ErrColdWallet)
	}
	return wl, nil
}

// maxHDAttempts bounds NextHD's retries: each lost race means another
// caller took the index, so this many callers at once are served.
const maxHDAttempts = 100

// NextHD allocates chain's next HD deposit address: index i is one past the
// highest of chain (0 for the first), derive(i) gives its address, and the
// wallet is stored as a deposit wallet whose key the signer holds (it
// derives the child key from its mnemonic to sign). Concurrent callers get
// distinct indexes: the unique (chain, hd_index) key makes a second writer
// of the same index fail, and it tries the next one. Each chain counts its
// own indexes.
func (w *Wallets) NextHD(ctx context.Context, chain, label string, derive func(i uint32) (string, error)) (Wallet, error) {
	for range maxHDAttempts {
		var next sql.NullInt64
		if err := w.db.QueryRowContext(ctx, "SELECT MAX(hd_index) + 1 FROM wallets WHERE chain=?", chain).Scan(&next); err != nil {
			return Wallet{}, fmt.Errorf("reading the next HD index of %s: %w", chain, err)
		}
		if next.Int64 > math.MaxInt32 { // below BIP32's hardened indexes
			return Wallet{}, fmt.Errorf("%s has used every HD deposit index", chain)
		}
		i := uint32(next.Int64)
		address, err := derive(i)
		if err != nil {
			return Wallet{}, fmt.Errorf("deriving HD deposit address %d: %w", i, err)
		}
		addr := norm(address)
		_, err = w.db.ExecContext(ctx, `INSERT INTO wallets (chain, address, kind, label, key_holder, hd_index)
			VALUES (?,?,'deposit',?,'signer',?)`, chain, addr, label, i)
		if err == nil {
			return w.Get(ctx, chain, addr)
		}
		if !sqlerr.IsDuplicateKey(err) {
			return Wallet{}, fmt.Errorf("storing HD deposit address %d of %s: %w", i, chain, err)
		}
		// Another caller took i (uq_wallet_hd), or i's address is stored
		// already without its index (uq_wallet): try again, then read.
		if wl, gerr := w.Get(ctx, chain, addr); gerr == nil && (wl.HDIndex == nil || *wl.HDIndex != i) {
			return Wallet{}, fmt.Errorf("HD deposit address %d of %s, %s, is stored already as another wallet", i, chain, addr)
		}
	}
	return Wallet{}, fmt.Errorf("allocating an HD deposit index of %s: %d attempts lost to other callers", chain, maxHDAttempts)
}

// HandOver records that payflow-signer now holds the key of chain's wallet
// at address: key_holder becomes 'signer' and the legacy sealed key is
// dropped. Handing over a wallet the signer holds already changes nothing;
// an unknown wallet is ErrWalletNotFound.
func (w *Wallets) HandOver(ctx context.Context, chain, address string) error {
	addr := norm(address)
	if wl, err := w.Get(ctx, chain, addr); err == nil && wl.Kind == KindCold {
		return fmt.Errorf("%s is %s's cold wallet, whose key payflow must not hold: %w", addr, chain, ErrColdWallet)
	}
	res, err := w.db.ExecContext(ctx, "UPDATE wallets SET key_holder='signer', enc_key=NULL WHERE chain=? AND address=?", chain, addr)
	if err != nil {
		return fmt.Errorf("handing %s on %s over to the signer: %w", addr, chain, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		_, err := w.Get(ctx, chain, addr) // unchanged: already the signer's, or no such wallet
		return err
	}
	return nil
}

// MasterKeyed lists the wallets of every chain whose key is still sealed
// under the legacy master key (key_holder 'master'), in the order they were
// stored. Only `payflowctl wallet migrate` reads them, with Open on a
// Wallets given the legacy KeySealer.
func (w *Wallets) MasterKeyed(ctx context.Context) ([]Wallet, error) {
	wallets, err := sqlrows.Collect(ctx, w.db, scanWallet, "SELECT "+walletColumns+
		" FROM wallets WHERE key_holder='master' ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("listing wallets with a master-sealed key: %w", err)
	}
	return wallets, nil
}
