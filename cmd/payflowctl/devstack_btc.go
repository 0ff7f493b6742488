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

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/shopspring/decimal"

	"payflow/chain/btc"
	"payflow/config"
	"payflow/custody/signerapi"
	"payflow/internal/stackfile"
	"payflow/ledger"
)

// btcNetwork is the dev stack's Bitcoin network.
const btcNetwork = "simnet"

// btcConfirmations is the dev Bitcoin chain's confirmations: six blocks,
// Bitcoin's usual depth, 18 s at the dev miner's pace, so that a test has
// time to reorganise a deposit seen but not yet confirmed.
const btcConfirmations = 6

// btcConfirmTimeout is how long a dev Bitcoin payment waits for its
// confirmations (18 s at the miner's pace) before it is replaced at a
// higher fee: long enough that none is replaced while the miner runs.
const btcConfirmTimeout = 45 * time.Second

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

// btcAccounts is what devstack asks payflow-signer of Bitcoin: its
// account xpub (signerapi.Client implements it).
type btcAccounts interface {
	BTCAccount(ctx context.Context, network string) (signerapi.BTCAccount, error)
}

// btcDevWallets are the dev Bitcoin wallets, each the signer's HD child at
// its position here (m/84'/115'/0'/0/i on simnet), with what the faucet
// gives it when it holds less than half of that.
// in outputs coins: a wallet that pays needs several, as a payment's
// change is spendable only once confirmed.
var btcDevWallets = []struct {
	kind    ledger.WalletKind
	label   string
	sats    int64
	outputs int
}{
	{ledger.KindCollection, "collection", 10 * btcutil.SatoshiPerBitcoin, 5},
	{ledger.KindHot, "hot", 5 * btcutil.SatoshiPerBitcoin, 10},
	{ledger.KindDeposit, "user-1", btcutil.SatoshiPerBitcoin, 1},
	{ledger.KindDeposit, "user-2", btcutil.SatoshiPerBitcoin, 1},
	{ledger.KindDeposit, "user-3", btcutil.SatoshiPerBitcoin, 1},
}

// prepareBTC describes the dev Bitcoin chain for stack.json: its node
// (checked to serve simnet), credentials, the faucet (whose coinbases btcd
// mines) and the managed wallets: children of payflow-signer's Bitcoin
// account, registered in the ledger, funded from the faucet and, once the
// funding is confirmations deep, credited to the ledger and recorded in
// the UTXO set (keyed as the scanner keys a deposit: txid and output
// index). config.json's btc_chains.BTC (devBTCChains) has the worker serve
// it.
func (d *devstack) prepareBTC(ctx context.Context, rpcURL, credentials string) (stackfile.Chain, error) {
	user, password, err := readBTCCredentials(credentials)
	if err != nil {
		return stackfile.Chain{}, err
	}
	faucetAddr, changed, err := btcFaucet(d.sec, btcNetwork)
	if err != nil {
		return stackfile.Chain{}, err
	}
	if changed {
		// btcd mines to the address stack.sh read before; a new key would
		// hold nothing. It happens only when secrets.json lost the key.
		return stackfile.Chain{}, errors.New("secrets.json has no BTC faucet key for the address btcd mines to: restart btcd (scripts/stack.sh stop-btcd; make up)")
	}
	// stack.sh's miner skips its period while this file exists.
	pauseFile, err := filepath.Abs(filepath.Join(filepath.Dir(credentials), "miner.paused"))
	if err != nil {
		return stackfile.Chain{}, err
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
	managed, collection, err := d.btcWallets(ctx, c)
	if err != nil {
		return stackfile.Chain{}, err
	}
	return stackfile.Chain{
		ChainFields: stackfile.ChainFields{Confirmations: btcConfirmations, FaucetPrivateKey: d.sec.BTCFaucetWIF, CollectionAddress: collection,
			ManagedWallets: managed},
		BTCFields: &stackfile.BTCFields{BTCRPCURL: rpcURL, RPCUser: user, RPCPassword: password, Network: btcNetwork, FaucetAddress: faucetAddr,
			MinerPauseFile: pauseFile},
		Native: stackfile.Native{Symbol: btc.Symbol, Decimals: btc.Decimals},
	}, nil
}

// btcWallets registers and funds the dev Bitcoin wallets and returns their
// addresses and the collection wallet's. A wallet is funded when its coins
// (the UTXO set's, confirmed or not) are below half its plan, and credited
// only when the ledger agreed with the set before (a new wallet: both
// zero), so the ledger keeps equal to the set; a second run funds nothing
// twice.
func (d *devstack) btcWallets(ctx context.Context, c *btc.Client) (managed []string, collection string, err error) {
	acct, err := d.btcSigner.BTCAccount(ctx, btcNetwork)
	if err != nil {
		return nil, "", fmt.Errorf("asking payflow-signer for its Bitcoin account: %w", err)
	}
	account, err := btc.NewAccount(acct.XPub, c.Params())
	if err != nil {
		return nil, "", err
	}
	set := btc.NewUTXOs(d.db, "BTC")
	var outs []btc.Output
	credit := map[string]bool{}
	for i, plan := range btcDevWallets {
		addr, err := account.Address(uint32(i))
		if err != nil {
			return nil, "", err
		}
		w, err := d.wallets.RegisterHD(ctx, "BTC", plan.kind, plan.label, addr, uint32(i))
		if err != nil {
			return nil, "", err
		}
		managed = append(managed, w.Address)
		if plan.kind == ledger.KindCollection {
			collection = w.Address
		}
		confirmed, unconfirmed, err := set.Balance(ctx, w.Address)
		if err != nil {
			return nil, "", err
		}
		if 2*(confirmed+unconfirmed) >= plan.sats {
			continue
		}
		lb, err := d.led.Balance(ctx, "BTC", w.Address, btc.Symbol)
		if err != nil {
			return nil, "", err
		}
		if unconfirmed == 0 && lb.Total().Equal(decimal.New(confirmed, -btc.Decimals)) {
			credit[w.Address] = true
		} else {
			fmt.Fprintf(os.Stderr, "[devstack] BTC: %s (%s) holds %s in the UTXO set and %s in the ledger; its top-up is not credited\n",
				w.Address, w.Label, btcutil.Amount(confirmed), lb.Total())
		}
		for range plan.outputs {
			outs = append(outs, btc.Output{Address: w.Address, Sats: plan.sats / int64(plan.outputs)})
		}
	}
	if len(outs) == 0 {
		return managed, collection, nil
	}
	faucet, err := btc.NewFaucet(c, d.sec.BTCFaucetWIF)
	if err != nil {
		return nil, "", err
	}
	tx, err := faucet.PayMany(ctx, outs)
	if err != nil {
		return nil, "", fmt.Errorf("funding the dev Bitcoin wallets: %w", err)
	}
	height, block, err := d.awaitBTC(ctx, c, tx.TxHash())
	if err != nil {
		return nil, "", err
	}
	for i, o := range outs {
		u := btc.UTXO{TxID: tx.TxHash().String(), Vout: uint32(i), Address: o.Address, Sats: o.Sats, Height: height, BlockHash: block}
		if err := set.Add(ctx, u); err != nil {
			return nil, "", err
		}
		if err := set.Confirm(ctx, u.TxID, u.Vout, height, block); err != nil {
			return nil, "", err
		}
		if credit[o.Address] {
			if _, err := d.led.Credit(ctx, ledger.CreditInput{Chain: "BTC", Address: o.Address, Symbol: btc.Symbol,
				Amount: decimal.New(o.Sats, -btc.Decimals), TxHash: u.TxID, LogIndex: uint(u.Vout), Reference: "devstack-funding"}); err != nil {
				return nil, "", err
			}
		}
		fmt.Fprintf(os.Stderr, "[devstack] BTC: funded %s with %s\n", o.Address, btcutil.Amount(o.Sats))
	}
	return managed, collection, nil
}

// awaitBTC waits until txid is the confirmations deep on the node's best
// chain (the stack's miner mines a block every few seconds) and returns its
// block's height and hash.
func (d *devstack) awaitBTC(ctx context.Context, c *btc.Client, txid chainhash.Hash) (int64, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		r, err := c.Tx(ctx, txid)
		if err != nil && !btc.IsNotFound(err) {
			return 0, "", err
		}
		if err == nil && int64(r.Confirmations) >= btcConfirmations {
			head, _, err := c.Head(ctx)
			if err != nil {
				return 0, "", err
			}
			height := head - int64(r.Confirmations) + 1
			at, err := c.BlockHash(ctx, height)
			if err != nil {
				return 0, "", err
			}
			if at.String() == r.BlockHash {
				return height, r.BlockHash, nil
			}
			// The head moved between the two reads: read again.
		}
		select {
		case <-ctx.Done():
			return 0, "", fmt.Errorf("waiting for the dev Bitcoin wallets' funding %s to be mined (is the stack's btcd miner running?): %w",
				txid, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// devBTCChains is config.json's btc_chains: the dev Bitcoin chain sc, its
// node's credentials named by their file (never copied into config.json).
// Its amounts, in BTC: payments above 2 BTC would wait for an operator,
// deposit wallets above 3 BTC would be swept, outputs below 1,000 satoshis
// are dust (recorded, not announced).
func devBTCChains(rpcURL, credentials string, sc stackfile.Chain) (map[string]config.BTCChain, error) {
	creds, err := filepath.Abs(credentials)
	if err != nil {
		return nil, err
	}
	return map[string]config.BTCChain{"BTC": {RPCURL: rpcURL, RPCCredentialsFile: creds, Network: sc.Network,
		Confirmations: sc.Confirmations, CollectionAddress: sc.CollectionAddress,
		Native: config.NativeCoin{Symbol: btc.Symbol, Decimals: btc.Decimals, Dust: "0.00001", ApprovalThreshold: "2",
			SweepThreshold: "3"},
		ConfirmTimeout: config.Duration{Duration: btcConfirmTimeout}}}, nil
}
