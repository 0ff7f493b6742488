package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"payflow/chain/btc"
	"payflow/internal/stackfile"
)

// btcNetwork is the dev stack's Bitcoin network.
const btcNetwork = "simnet"

// cmdBTCFaucet prints the address of the dev stack's Bitcoin faucet, making
// its key (kept in secrets.json, as a WIF) on the first run: stack.sh starts
// btcd with it as the mining address, before devstack runs.
func cmdBTCFaucet(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("btc-faucet", flag.ExitOnError)
	dir := fs.String("dir", ".dev", "dev data directory")
	network := fs.String("network", btcNetwork, "the Bitcoin network of the dev node")
	_ = fs.Parse(args)
	path := filepath.Join(*dir, "secrets.json")
	sec, err := loadSecrets(path)
	if err != nil {
		return err
	}
	addr, changed, err := btcFaucet(&sec, *network)
	if err != nil {
		return err
	}
	if changed {
		if err := saveJSON(path, sec, 0o600); err != nil {
			return err
		}
	}
	fmt.Println(addr)
	return nil
}

// btcFaucet returns the faucet's address on network, making its key when
// secrets.json has none for that network (changed is then true).
func btcFaucet(sec *devSecrets, network string) (addr string, changed bool, err error) {
	params, err := btc.Params(network)
	if err != nil {
		return "", false, err
	}
	if sec.BTCFaucetWIF != "" {
		if addr, err := btc.WIFAddress(sec.BTCFaucetWIF, params); err == nil {
			return addr, false, nil
		}
		// A key of another network: a new dev chain gets a new faucet.
	}
	if sec.BTCFaucetWIF, err = btc.NewWIF(params); err != nil {
		return "", false, err
	}
	addr, err = btc.WIFAddress(sec.BTCFaucetWIF, params)
	return addr, true, err
}

// readBTCCredentials reads the node's USER:PASSWORD file that stack.sh made.
func readBTCCredentials(path string) (user, password string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("reading the btcd credentials: %w", err)
	}
	user, password, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok || user == "" || password == "" {
		return "", "", fmt.Errorf("%s: want USER:PASSWORD", path)
	}
	return user, password, nil
}

// prepareBTC describes the dev Bitcoin chain for stack.json: its node
// (checked to serve simnet), credentials, the faucet (whose coinbases btcd
// mines) and the managed wallets. payflow's worker does not serve BTC yet,
// so config.json names no BTC chain and no wallet is registered.
func (d *devstack) prepareBTC(ctx context.Context, rpcURL, credentials string) (stackfile.Chain, error) {
	user, password, err := readBTCCredentials(credentials)
	if err != nil {
		return stackfile.Chain{}, err
	}
	faucet, changed, err := btcFaucet(d.sec, btcNetwork)
	if err != nil {
		return stackfile.Chain{}, err
	}
	if changed {
		// btcd mines to the address stack.sh read before; a new key would
		// hold nothing. It happens only when secrets.json lost the key.
		return stackfile.Chain{}, errors.New("secrets.json has no BTC faucet key for the address btcd mines to: restart btcd (scripts/stack.sh stop-btcd; make up)")
	}
	c, err := btc.Dial(btc.ClientConfig{URL: rpcURL, User: user, Password: password, Network: btcNetwork})
	if err != nil {
		return stackfile.Chain{}, err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.CheckNetwork(cctx); err != nil {
		return stackfile.Chain{}, err
	}
	return stackfile.Chain{
		ChainFields: stackfile.ChainFields{Confirmations: d.confs, FaucetPrivateKey: d.sec.BTCFaucetWIF, ManagedWallets: []string{}},
		BTCFields:   &stackfile.BTCFields{BTCRPCURL: rpcURL, RPCUser: user, RPCPassword: password, Network: btcNetwork, FaucetAddress: faucet},
		Native:      stackfile.Native{Symbol: btc.Symbol, Decimals: btc.Decimals},
	}, nil
}
