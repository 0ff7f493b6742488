// Command payflowctl is payflow's operator tool:
//
//	payflowctl migrate                      apply SQL migrations
//	payflowctl wallet create -kind K        a new key in payflow-signer (-backend kms|envelope), registered (prints the address)
//	payflowctl wallet import -kind K        hand a key read from stdin to payflow-signer, registered
//	payflowctl wallet register -address A   register a signer key's address on another chain
//	payflowctl wallet list                  list wallets (never keys)
//	payflowctl wallet migrate               hand the keys sealed under the legacy master key to payflow-signer
//	payflowctl address new -chain C         the chain's next HD deposit address, from custody.account_xpub
//	payflowctl signer status                payflow-signer's KMS, keys and last signatures
//	payflowctl devstack -dir .dev ...       used by `make up`: token, wallets, funding, stack.json
//	payflowctl payment show|list|approve|reject|release ...
//	                                        operate payments (payment.go; `payflowctl payment help`)
//	payflowctl deposit list-held|release|return ...
//	                                        the deposits screening froze (screening.go)
//	payflowctl denylist list|add|remove|reload ...
//	                                        edit the deny list (screening.go)
//
// `wallet`, `address` and `signer` read the worker's configuration (-config,
// PAYFLOW_CONFIG, else the dev stack's; custody.go), the database from
// PAYFLOW_MYSQL_DSN when set, and the signer's socket from -signer-socket,
// PAYFLOW_SIGNER_SOCKET or signer.socket. Only `wallet migrate` reads the
// legacy PAYFLOW_MASTER_KEY. `payment` reads the worker's configuration too
// (--config, PAYFLOW_CONFIG).
package main

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/ethereum/go-ethereum/crypto"
	_ "github.com/go-sql-driver/mysql"

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
	case "address":
		err = cmdAddress(ctx, os.Args[2:])
	case "signer":
		err = cmdSigner(ctx, os.Args[2:])
	case "devstack":
		err = cmdDevstack(ctx, os.Args[2:])
	case "btc-faucet":
		err = cmdBTCFaucet(ctx, os.Args[2:])
	case "payment":
		err = cmdPayment(ctx, os.Args[2:])
	case "deposit":
		err = cmdDeposit(ctx, os.Args[2:])
	case "denylist":
		err = cmdDenylist(ctx, os.Args[2:])
	case "audit":
		err = cmdAudit(ctx, os.Args[2:])
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
	fmt.Fprint(os.Stderr, `usage: payflowctl COMMAND
  migrate                                   apply SQL migrations (PAYFLOW_MYSQL_DSN)
  wallet create -kind K [-chain C] [-label L] [-backend kms|envelope]
                                            a new key in payflow-signer (default backend: kms for a hot
                                            wallet, envelope otherwise), registered; prints the address
  wallet import -kind K [-chain C] [-label L] < keyfile
                                            hand a hex private key to payflow-signer, registered
  wallet register -kind K -chain C -address A [-label L]
                                            register the address of a key payflow-signer holds on
                                            another chain (a key signs on every EVM chain)
  wallet list [-chain C]                    list wallets (never keys)
  wallet migrate -reason R [-as U] [-json]  hand every key sealed under the legacy master key
                                            (PAYFLOW_MASTER_KEY, read by this command only) to
                                            payflow-signer; a second run moves nothing
  address new -chain C [-label L]           the chain's next HD deposit address and its index (JSON),
                                            derived from custody.account_xpub; no signer needed
  signer status [-json]                     payflow-signer's KMS, keys and last signatures
  devstack -dir .dev ...                    used by make up
  btc-faucet -dir .dev [-network simnet]   the dev Bitcoin faucet's address (its key made on the
                                            first run, kept in secrets.json); used by make up
  payment show|list|approve|reject|release  operate payments (payflowctl payment help)
  deposit list-held|release|return          the deposits screening froze (payflowctl deposit help)
  denylist list|add|remove|reload           edit the deny list (payflowctl denylist help)
  audit list [-payment QUEUE_ID] [-action A] the operator audit trail: who did what, when and why
Flags of wallet, address and signer: -config PATH (default $PAYFLOW_CONFIG, else .dev/config.json),
-env-file PATH, -signer-socket PATH (default $PAYFLOW_SIGNER_SOCKET, else signer.socket).
`)
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

func cmdMigrate(ctx context.Context) error {
	db, err := openDB(ctx, "")
	if err != nil {
		return err
	}
	defer db.Close()
	return ledger.Migrate(ctx, db)
}

func randomHex(n int) string {
	k, err := crypto.GenerateKey() // any 32 random bytes will do
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(crypto.FromECDSA(k))[:2*n]
}
