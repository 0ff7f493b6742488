// Command payflowctl is payflow's operator tool:
//
//	payflowctl migrate                      apply SQL migrations
//	payflowctl wallet create -kind K        create a wallet (prints the address only)
//	payflowctl wallet import -kind K        import a key read from stdin
//	payflowctl wallet list                  list wallets (never keys)
//	payflowctl devstack -dir .dev ...       used by `make up`: token, wallets, funding, stack.json
//	payflowctl payment show|list|approve|reject|release ...
//	                                        operate payments (payment.go; `payflowctl payment help`)
//
// Database and master key come from PAYFLOW_MYSQL_DSN and PAYFLOW_MASTER_KEY;
// `payment` reads the worker's configuration instead (--config, PAYFLOW_CONFIG).
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/crypto"
	_ "github.com/go-sql-driver/mysql"

	"payflow/chain/evm"
	"payflow/config"
	"payflow/ledger"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx := context.Background()
	var err error
	switch os.Args[1] {
	case "migrate":
		err = cmdMigrate(ctx)
	case "wallet":
		err = cmdWallet(ctx, os.Args[2:])
	case "devstack":
		err = cmdDevstack(ctx, os.Args[2:])
	case "payment":
		err = cmdPayment(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "payflowctl:", err)
		var r *refusal
		if errors.As(err, &r) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: payflowctl migrate | wallet create|import|list | devstack | payment show|list|approve|reject|release")
	os.Exit(2)
}

func openDB(ctx context.Context, dsn string) (*sql.DB, error) {
	if dsn == "" {
		dsn = os.Getenv(config.EnvMySQLDSN)
	}
	if dsn == "" {
		return nil, fmt.Errorf("%s is not set", config.EnvMySQLDSN)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	return db, db.PingContext(ctx)
}

func sealerFromEnv() (*ledger.KeySealer, error) {
	cfg := config.Config{MasterKey: config.Secret(os.Getenv(config.EnvMasterKey))}
	k, err := cfg.MasterKeyBytes()
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return ledger.NewKeySealer(k)
}

func cmdMigrate(ctx context.Context) error {
	db, err := openDB(ctx, "")
	if err != nil {
		return err
	}
	defer db.Close()
	return ledger.Migrate(ctx, db)
}

func cmdWallet(ctx context.Context, args []string) error {
	if len(args) < 1 {
		usage()
	}
	fs := flag.NewFlagSet("wallet", flag.ExitOnError)
	kind := fs.String("kind", "deposit", "deposit|collection|hot|gas")
	chainName := fs.String("chain", "ETH", "chain name")
	label := fs.String("label", "", "label")
	_ = fs.Parse(args[1:])
	db, err := openDB(ctx, "")
	if err != nil {
		return err
	}
	defer db.Close()
	switch args[0] {
	case "list":
		ws, err := ledger.NewWallets(db, nil).List(ctx, *chainName, "")
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(ws)
	case "create", "import":
		switch ledger.WalletKind(*kind) {
		case ledger.KindDeposit, ledger.KindCollection, ledger.KindHot, ledger.KindGas:
		default:
			return fmt.Errorf("unknown wallet kind %q", *kind)
		}
		sealer, err := sealerFromEnv()
		if err != nil {
			return err
		}
		w := evm.Keys{Wallets: ledger.NewWallets(db, sealer)}
		var wl ledger.Wallet
		if args[0] == "create" {
			wl, err = w.Create(ctx, *chainName, ledger.WalletKind(*kind), *label)
		} else {
			line, rerr := bufio.NewReader(os.Stdin).ReadString('\n')
			if rerr != nil && line == "" {
				return errors.New("import reads a hex private key from stdin")
			}
			key, kerr := crypto.HexToECDSA(strings.TrimPrefix(strings.TrimSpace(line), "0x"))
			if kerr != nil {
				return errors.New("stdin is not a hex secp256k1 private key")
			}
			wl, err = w.Import(ctx, *chainName, ledger.WalletKind(*kind), *label, key)
		}
		if err != nil {
			return err
		}
		fmt.Println(wl.Address)
		return nil
	}
	usage()
	return nil
}

func randomHex(n int) string {
	k, err := crypto.GenerateKey() // any 32 random bytes will do
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(crypto.FromECDSA(k))[:2*n]
}
