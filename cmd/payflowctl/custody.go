package main

// Keys and addresses: `wallet`, `address` and `signer`. Keys live in
// payflow-signer; payflowctl asks it for new keys, hands it legacy ones
// (`wallet migrate`) and registers the addresses in the ledger's wallets.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"payflow/audit"
	"payflow/chain/evm"
	"payflow/config"
	"payflow/custody/addresses"
	"payflow/custody/signerapi"
	"payflow/internal/app"
	"payflow/ledger"
)

// envMasterKey is the legacy master key (64 hex characters) that sealed
// wallet keys in the wallets table before payflow-signer: `wallet migrate`
// is the only command that reads it.
const envMasterKey = "PAYFLOW_MASTER_KEY"

// ctlFlags are the flags of `wallet`, `address` and `signer`.
type ctlFlags struct {
	config, envFile, socket string
	json                    bool
	cfg                     *config.Config // loaded once, when needed
}

func (f *ctlFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", os.Getenv(config.EnvConfigPath), "the worker's config.json")
	fs.StringVar(&f.envFile, "env-file", "", "file of KEY='value' environment lines (default: the dev stack's payflow.env)")
	fs.StringVar(&f.socket, "signer-socket", "", "payflow-signer's Unix socket (default $"+config.EnvSignerSocket+", else signer.socket)")
	fs.BoolVar(&f.json, "json", false, "JSON output")
}

// loadConfig loads the worker's configuration (see loadCLIConfig).
func (f *ctlFlags) loadConfig() (config.Config, error) {
	if f.cfg == nil {
		cfg, err := loadCLIConfig(f.config, f.envFile)
		if err != nil {
			return config.Config{}, err
		}
		f.cfg = &cfg
	}
	return *f.cfg, nil
}

// openDB opens the database of PAYFLOW_MYSQL_DSN, else the configuration's.
func (f *ctlFlags) openDB(ctx context.Context) (*sql.DB, error) {
	if os.Getenv(config.EnvMySQLDSN) != "" && f.config == "" {
		return openDB(ctx, "")
	}
	cfg, err := f.loadConfig()
	if err != nil {
		return nil, err
	}
	return app.OpenDB(ctx, cfg)
}

// signer returns a client of payflow-signer at -signer-socket,
// $PAYFLOW_SIGNER_SOCKET or the configuration's signer.socket.
func (f *ctlFlags) signer() (*signerapi.Client, error) {
	socket := f.socket
	if socket == "" {
		socket = os.Getenv(config.EnvSignerSocket)
	}
	if socket == "" {
		cfg, err := f.loadConfig()
		if err != nil {
			return nil, fmt.Errorf("finding payflow-signer's socket: %w", err)
		}
		socket = cfg.Signer.Socket
	}
	if socket == "" {
		return nil, fmt.Errorf("no payflow-signer socket: pass -signer-socket, set %s or signer.socket in the configuration",
			config.EnvSignerSocket)
	}
	return signerapi.NewClient(socket), nil
}

// keyService is what payflowctl asks of payflow-signer
// (*signerapi.Client).
type keyService interface {
	NewKey(ctx context.Context, backend string) (signerapi.KeyInfo, error)
	Import(ctx context.Context, privateKeyHex string) (signerapi.KeyInfo, error)
	Status(ctx context.Context) (signerapi.Status, error)
}

func parseKind(kind string) (ledger.WalletKind, error) {
	switch k := ledger.WalletKind(kind); k {
	case ledger.KindDeposit, ledger.KindCollection, ledger.KindHot, ledger.KindGas:
		return k, nil
	}
	return "", fmt.Errorf("unknown wallet kind %q: want deposit, collection, hot or gas", kind)
}

// defaultBackend is where `wallet create` keeps a new key: a hot wallet,
// which signs all day, as a KMS key (it never leaves the KMS); the others
// envelope-sealed.
func defaultBackend(kind ledger.WalletKind) string {
	if kind == ledger.KindHot {
		return signerapi.BackendKMS
	}
	return signerapi.BackendEnvelope
}

func cmdWallet(ctx context.Context, args []string) error {
	if len(args) < 1 {
		usage()
	}
	fs := flag.NewFlagSet("wallet "+args[0], flag.ExitOnError)
	var f ctlFlags
	f.register(fs)
	kind := fs.String("kind", "deposit", "deposit|collection|hot|gas")
	chainName := fs.String("chain", "ETH", "chain name")
	label := fs.String("label", "", "label")
	backend := fs.String("backend", "", "kms|envelope (default: kms for a hot wallet, envelope otherwise)")
	address := fs.String("address", "", "register: the address of a key payflow-signer holds")
	var actor actorFlags
	if args[0] == "migrate" {
		actor.register(fs)
	}
	_ = fs.Parse(args[1:])
	*chainName = strings.ToUpper(*chainName)
	switch args[0] {
	case "list", "create", "import", "register", "migrate":
	default:
		usage()
	}
	db, err := f.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	wallets := ledger.NewWallets(db, nil)
	switch args[0] {
	case "list":
		ws, err := wallets.List(ctx, *chainName, "")
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(ws)
	case "migrate":
		if err := actor.check("wallet migrate"); err != nil {
			return err
		}
		sum, err := migrateLegacy(ctx, db, wallets, &f)
		// Recorded whatever happened: a half-done migration moved keys.
		err = actor.record(ctx, db, audit.Entry{Action: audit.ActionWalletMigrate, Subject: "wallets sealed under the legacy master key",
			Changes: audit.Changes(sum)}, err)
		if err != nil {
			return err
		}
		if f.json {
			return printOut(sum, true)
		}
		fmt.Println(sum)
		return nil
	}
	k, err := parseKind(*kind)
	if err != nil {
		return err
	}
	sc, err := f.signer()
	if err != nil {
		return err
	}
	var info signerapi.KeyInfo
	switch args[0] {
	case "register":
		// Another chain for a key the signer holds: it signs on every EVM chain.
		if !common.IsHexAddress(*address) {
			return errors.New("register needs -address, a 0x address")
		}
		var ok bool
		if info, ok = signerHolds(ctx, sc, strings.ToLower(*address)); !ok {
			return fmt.Errorf("payflow-signer holds no key for %s", *address)
		}
	case "create":
		if *backend == "" {
			*backend = defaultBackend(k)
		}
		if *backend != signerapi.BackendKMS && *backend != signerapi.BackendEnvelope {
			return fmt.Errorf("unknown backend %q: want kms or envelope", *backend)
		}
		if info, err = sc.NewKey(ctx, *backend); err != nil {
			return fmt.Errorf("asking payflow-signer for a %s key: %w", *backend, err)
		}
	default:
		if info, err = importKey(ctx, sc, os.Stdin); err != nil {
			return err
		}
	}
	wl, err := wallets.Register(ctx, *chainName, k, *label, info.Address)
	if err != nil {
		return err
	}
	fmt.Println(wl.Address)
	return nil
}

// importKey hands the hex private key on r's first line to the signer.
func importKey(ctx context.Context, sc keyService, r io.Reader) (signerapi.KeyInfo, error) {
	line, rerr := bufio.NewReader(r).ReadString('\n')
	if rerr != nil && line == "" {
		return signerapi.KeyInfo{}, errors.New("import reads a hex private key from stdin")
	}
	hexKey := strings.TrimPrefix(strings.TrimSpace(line), "0x")
	key, err := crypto.HexToECDSA(hexKey)
	if err != nil {
		return signerapi.KeyInfo{}, errors.New("stdin is not a hex secp256k1 private key")
	}
	addr := evm.Lower(crypto.PubkeyToAddress(key.PublicKey))
	return importChecked(ctx, sc, hexKey, addr)
}

// importChecked imports hexKey, whose address is addr, into the signer.
// A key the signer holds already at addr counts as imported.
func importChecked(ctx context.Context, sc keyService, hexKey, addr string) (signerapi.KeyInfo, error) {
	info, err := sc.Import(ctx, hexKey)
	if err != nil {
		if held, ok := signerHolds(ctx, sc, addr); ok {
			return held, nil
		}
		return signerapi.KeyInfo{}, fmt.Errorf("handing the key of %s to payflow-signer: %w", addr, err)
	}
	if !strings.EqualFold(info.Address, addr) {
		return signerapi.KeyInfo{}, fmt.Errorf("payflow-signer took the key of %s as %s's", addr, info.Address)
	}
	return info, nil
}

// signerHolds returns the signer's key at addr, if it holds one.
func signerHolds(ctx context.Context, sc keyService, addr string) (signerapi.KeyInfo, bool) {
	st, err := sc.Status(ctx)
	if err != nil {
		return signerapi.KeyInfo{}, false
	}
	for _, k := range st.Keys {
		if strings.EqualFold(k.Address, addr) {
			return k, true
		}
	}
	return signerapi.KeyInfo{}, false
}

// legacySealer reads the legacy master key (64 hex characters).
func legacySealer(masterHex string) (*ledger.KeySealer, error) {
	if masterHex == "" {
		return nil, fmt.Errorf("%s is not set: wallet migrate opens the legacy keys with it", envMasterKey)
	}
	mk, err := hex.DecodeString(strings.TrimPrefix(masterHex, "0x"))
	if err != nil || len(mk) != 32 {
		return nil, fmt.Errorf("%s must be 64 hex characters (32 bytes)", envMasterKey)
	}
	defer clear(mk)
	return ledger.NewKeySealer(mk)
}

// migrateLegacy moves every master-keyed wallet to payflow-signer (see
// migrateWallets); with none left, it needs neither the master key nor the
// signer.
func migrateLegacy(ctx context.Context, db *sql.DB, wallets *ledger.Wallets, f *ctlFlags) (migrateSummary, error) {
	legacy, err := wallets.MasterKeyed(ctx)
	if err != nil || len(legacy) == 0 {
		return migrateSummary{}, err
	}
	sc, err := f.signer()
	if err != nil {
		return migrateSummary{}, err
	}
	sealer, err := legacySealer(os.Getenv(envMasterKey))
	if err != nil {
		return migrateSummary{}, err
	}
	return migrateWallets(ctx, ledger.NewWallets(db, sealer), sc, os.Stderr)
}

// migrateSummary is what `wallet migrate` did.
type migrateSummary struct {
	// Wallets handed over to the signer (one per chain and address).
	Wallets int `json:"wallets"`
	// Imported keys: the signer took them now.
	Imported int `json:"imported"`
	// AlreadyHeld keys the signer held before (an interrupted run's).
	AlreadyHeld int `json:"already_held"`
}

func (s migrateSummary) String() string {
	if s.Wallets == 0 {
		return "wallet migrate: no wallet has a key under the master key; nothing to move"
	}
	return fmt.Sprintf("wallet migrate: %d wallets handed over to payflow-signer (%d keys imported, %d already held); none left under the master key",
		s.Wallets, s.Imported, s.AlreadyHeld)
}

// migrateWallets hands every wallet whose key is sealed under the legacy
// master key to payflow-signer: it opens the key (wallets has the legacy
// sealer), imports it, and records the hand-over, which drops the sealed
// key. The same address on several chains is imported once. A run that
// stopped half-way is finished by the next; a finished one finds nothing
// to move. log gets a line per wallet.
func migrateWallets(ctx context.Context, wallets *ledger.Wallets, sc keyService, log io.Writer) (migrateSummary, error) {
	var sum migrateSummary
	legacy, err := wallets.MasterKeyed(ctx)
	if err != nil || len(legacy) == 0 {
		return sum, err
	}
	st, err := sc.Status(ctx)
	if err != nil {
		return sum, fmt.Errorf("reading payflow-signer's keys: %w", err)
	}
	held := map[string]signerapi.KeyInfo{}
	for _, k := range st.Keys {
		held[strings.ToLower(k.Address)] = k
	}
	done := map[string]bool{}
	for _, wl := range legacy {
		if !done[wl.Address] {
			k, ok := held[wl.Address]
			if ok {
				sum.AlreadyHeld++
			} else {
				if k, err = importLegacy(ctx, wallets, sc, wl); err != nil {
					return sum, err
				}
				sum.Imported++
			}
			done[wl.Address] = true
			fmt.Fprintf(log, "[wallet migrate] %s (%s): payflow-signer holds its key (%s)\n", wl.Address, wl.Label, k.Backend)
		}
		if err := wallets.HandOver(ctx, wl.Chain, wl.Address); err != nil {
			return sum, err
		}
		sum.Wallets++
		fmt.Fprintf(log, "[wallet migrate] %s: %s (%s) handed over\n", wl.Chain, wl.Address, wl.Label)
	}
	return sum, nil
}

// importLegacy opens wl's legacy key and imports it into the signer.
func importLegacy(ctx context.Context, wallets *ledger.Wallets, sc keyService, wl ledger.Wallet) (signerapi.KeyInfo, error) {
	plain, err := wallets.Open(ctx, wl.Chain, wl.Address)
	if err != nil {
		return signerapi.KeyInfo{}, err
	}
	defer clear(plain)
	key, err := crypto.ToECDSA(plain)
	if err != nil {
		return signerapi.KeyInfo{}, fmt.Errorf("the key of %s on %s is not a secp256k1 key", wl.Address, wl.Chain)
	}
	if a := evm.Lower(crypto.PubkeyToAddress(key.PublicKey)); a != wl.Address {
		return signerapi.KeyInfo{}, fmt.Errorf("the key stored for %s on %s is %s's", wl.Address, wl.Chain, a)
	}
	// The hex string cannot be cleared; it lives until the import's
	// request is collected, in this short-lived command only.
	return importChecked(ctx, sc, hex.EncodeToString(plain), wl.Address)
}

func cmdAddress(ctx context.Context, args []string) error {
	if len(args) < 1 || args[0] != "new" {
		usage()
	}
	fs := flag.NewFlagSet("address new", flag.ExitOnError)
	var f ctlFlags
	f.register(fs)
	chainName := fs.String("chain", "", "chain name (ETH, BSC, ...)")
	label := fs.String("label", "", "label (at most 64 characters)")
	_ = fs.Parse(args[1:])
	cfg, err := f.loadConfig()
	if err != nil {
		return err
	}
	if *chainName == "" {
		return fmt.Errorf("-chain is required: one of %s", strings.Join(cfg.ChainNames(), ", "))
	}
	db, err := app.OpenDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	alloc, err := addresses.ForConfig(cfg, ledger.NewWallets(db, nil))
	if err != nil {
		return err
	}
	a, err := alloc.Next(ctx, *chainName, *label)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(a)
}

func cmdSigner(ctx context.Context, args []string) error {
	if len(args) < 1 || args[0] != "status" {
		usage()
	}
	fs := flag.NewFlagSet("signer status", flag.ExitOnError)
	var f ctlFlags
	f.register(fs)
	_ = fs.Parse(args[1:])
	sc, err := f.signer()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := sc.Status(ctx)
	if err != nil {
		return fmt.Errorf("reading payflow-signer's status at %s: %w", sc.Socket(), err)
	}
	if f.json {
		return printOut(st, true)
	}
	writeSignerStatus(os.Stdout, sc.Socket(), st)
	return nil
}

func writeSignerStatus(w io.Writer, socket string, st signerapi.Status) {
	fmt.Fprintf(w, "signer:        %s\nKMS:           %s\nenvelope key:  %s\naccount xpub:  %s\n",
		socket, orDash(st.KMS), orDash(st.EnvelopeKeyID), orDash(st.AccountXPub))
	fmt.Fprintf(w, "\nkeys (%d):\n", len(st.Keys))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ADDRESS\tBACKEND\tKMS KEY\tCREATED")
	for _, k := range st.Keys {
		created := "-"
		if !k.Created.IsZero() {
			created = k.Created.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", k.Address, k.Backend, orDash(k.KMSKeyID), created)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nlast signatures (%d):\n", len(st.Last))
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  AT\tCHAIN\tWORKFLOW\tSTEP\tATTEMPT\tFROM\tVERDICT\tTX\tREASON")
	for _, e := range st.Last {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.Chain, e.WorkflowID, e.Step,
			e.Attempt, e.From, e.Verdict, orDash(e.TxHash), orDash(e.Reason))
	}
	_ = tw.Flush()
}
