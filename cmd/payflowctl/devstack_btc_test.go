package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
	"payflow/custody/signerapi"
	"payflow/internal/stackfile"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// TestBTCFaucetKeepsItsKey: the faucet's key is made once per network and
// kept; a key of another network is replaced.
func TestBTCFaucetKeepsItsKey(t *testing.T) {
	var sec devSecrets
	addr, changed, err := btcFaucet(&sec, "simnet")
	require.NoError(t, err)
	require.True(t, changed)
	again, changed, err := btcFaucet(&sec, "simnet")
	require.NoError(t, err)
	require.False(t, changed)
	require.Equal(t, addr, again)
	other, changed, err := btcFaucet(&sec, "regtest")
	require.NoError(t, err)
	require.True(t, changed, "a simnet key is no regtest key")
	require.Regexp(t, `^bcrt1q`, other)
	_, _, err = btcFaucet(&sec, "moonnet")
	require.ErrorIs(t, err, btc.ErrNetwork)
}

// fakeBTCSigner answers a Bitcoin account derived from a fixed seed, as
// payflow-signer derives it from its mnemonic.
type fakeBTCSigner struct{ xpub string }

func (f fakeBTCSigner) BTCAccount(_ context.Context, network string) (signerapi.BTCAccount, error) {
	return signerapi.BTCAccount{Network: network, XPub: f.xpub}, nil
}

func simnetAccountXPub(t *testing.T) string {
	t.Helper()
	params, _ := btc.Params("simnet")
	seed := sha256.Sum256([]byte("devstack btc wallets"))
	k, err := hdkeychain.NewMaster(seed[:], params)
	require.NoError(t, err)
	for _, i := range btc.AccountPath(params) {
		k, err = k.Derive(i)
		require.NoError(t, err)
	}
	pub, err := k.Neuter()
	require.NoError(t, err)
	return pub.String()
}

// TestPrepareBTC: stack.json's chains.BTC names the node (checked to serve
// simnet), its credentials, the faucet's WIF and address, the native coin
// with 8 decimals, none of an EVM chain's fields, and the managed wallets:
// the signer account's first five addresses, registered as its HD
// children, funded, credited to the ledger and recorded in the UTXO set,
// which matches the node. A second run funds nothing.
func TestPrepareBTC(t *testing.T) {
	n := btctest.Start(t)
	ctx := context.Background()
	db := stacktest.TestDB(t, "devstackbtc")
	require.NoError(t, ledger.Migrate(ctx, db))
	creds := filepath.Join(t.TempDir(), "rpc-credentials")
	require.NoError(t, os.WriteFile(creds, []byte(n.Config.User+":"+n.Config.Password+"\n"), 0o600))
	xpub := simnetAccountXPub(t)
	d := &devstack{sec: &devSecrets{BTCFaucetWIF: n.FaucetWIF}, confs: 3, db: db, wallets: ledger.NewWallets(db, nil),
		led: ledger.NewUnbatched(db), btcSigner: fakeBTCSigner{xpub}}
	n.MineEvery(t, 100*time.Millisecond)
	sc, err := d.prepareBTC(ctx, n.Config.URL, creds)
	require.NoError(t, err)
	require.True(t, sc.IsBTC())
	require.Equal(t, n.Faucet.Address(), sc.FaucetAddress)

	acct, err := btc.NewAccount(xpub, n.Client.Params())
	require.NoError(t, err)
	require.Len(t, sc.ManagedWallets, len(btcDevWallets))
	set := btc.NewUTXOs(db, "BTC")
	for i, plan := range btcDevWallets {
		want, err := acct.Address(uint32(i))
		require.NoError(t, err)
		require.Equal(t, want, sc.ManagedWallets[i])
		w, err := d.wallets.Get(ctx, "BTC", want)
		require.NoError(t, err)
		require.Equal(t, plan.kind, w.Kind)
		require.Equal(t, "signer", w.KeyHolder)
		require.NotNil(t, w.HDIndex)
		require.EqualValues(t, i, *w.HDIndex)
		confirmed, unconfirmed, err := set.Balance(ctx, want)
		require.NoError(t, err)
		require.Equal(t, [2]int64{plan.sats, 0}, [2]int64{confirmed, unconfirmed})
		lb, err := d.led.Balance(ctx, "BTC", want, "BTC")
		require.NoError(t, err)
		require.Equal(t, decimal.New(plan.sats, -8).String(), lb.Total().String(), "the ledger equals the UTXO set")
		r, err := set.Reconcile(ctx, n.Client, want, 3)
		require.NoError(t, err)
		require.True(t, r.Matched(), "%+v", r)
	}
	require.Equal(t, sc.ManagedWallets[0], sc.CollectionAddress)

	b, err := json.Marshal(sc)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, []string{"btc_rpc_url", "collection_address", "confirmations", "faucet_address", "faucet_private_key",
		"managed_wallets", "miner_pause_file", "native", "network", "rpc_password", "rpc_user"}, slices.Sorted(maps.Keys(m)))
	require.Equal(t, "simnet", m["network"])
	require.Equal(t, n.FaucetWIF, m["faucet_private_key"])
	require.Equal(t, map[string]any{"symbol": "BTC", "decimals": float64(8)}, m["native"])
	var back stackfile.Chain
	require.NoError(t, json.Unmarshal(b, &back))
	require.True(t, back.IsBTC())
	require.Equal(t, n.Config.Password, back.RPCPassword)

	again, err := d.prepareBTC(ctx, n.Config.URL, creds)
	require.NoError(t, err)
	require.Equal(t, sc, again)
	for i, a := range sc.ManagedWallets {
		coins, err := set.List(ctx, a)
		require.NoError(t, err)
		require.Len(t, coins, btcDevWallets[i].outputs, "a second run funds nothing")
	}

	// Without the key of the address btcd mines to, devstack stops:
	// a new key would hold nothing.
	d.sec.BTCFaucetWIF = ""
	_, err = d.prepareBTC(ctx, n.Config.URL, creds)
	require.Error(t, err)
}
