package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
	"payflow/internal/stackfile"
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

// TestPrepareBTC: stack.json's chains.BTC names the node (checked to serve
// simnet), its credentials, the faucet's WIF and address, the native coin
// with 8 decimals, and none of an EVM chain's fields.
func TestPrepareBTC(t *testing.T) {
	n := btctest.Start(t)
	creds := filepath.Join(t.TempDir(), "rpc-credentials")
	require.NoError(t, os.WriteFile(creds, []byte(n.Config.User+":"+n.Config.Password+"\n"), 0o600))
	d := &devstack{sec: &devSecrets{BTCFaucetWIF: n.FaucetWIF}, confs: 3}
	sc, err := d.prepareBTC(context.Background(), n.Config.URL, creds)
	require.NoError(t, err)
	require.True(t, sc.IsBTC())
	require.Equal(t, n.Faucet.Address(), sc.FaucetAddress)

	b, err := json.Marshal(sc)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, []string{"btc_rpc_url", "collection_address", "confirmations", "faucet_address", "faucet_private_key",
		"managed_wallets", "native", "network", "rpc_password", "rpc_user"}, slices.Sorted(maps.Keys(m)))
	require.Equal(t, "simnet", m["network"])
	require.Equal(t, n.FaucetWIF, m["faucet_private_key"])
	require.Equal(t, map[string]any{"symbol": "BTC", "decimals": float64(8)}, m["native"])

	var back stackfile.Chain
	require.NoError(t, json.Unmarshal(b, &back))
	require.True(t, back.IsBTC())
	require.Equal(t, n.Config.Password, back.RPCPassword)

	// Without the key of the address btcd mines to, devstack stops:
	// a new key would hold nothing.
	d.sec.BTCFaucetWIF = ""
	_, err = d.prepareBTC(context.Background(), n.Config.URL, creds)
	require.Error(t, err, "no faucet key for the address btcd mines to")
}
