package integration

import (
	"context"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/internal/stacktest"
)

// TestDevStackBTC: `make up` runs btcd and describes it in stack.json's
// chains.BTC: a node serving simnet with the credentials given, mined past
// segwit's activation and mining on by itself; a faucet whose key (WIF) is
// the address btcd mines to and whose coins pay a new address, mined by the
// stack within a minute and found by the address index; and the managed
// wallets, payflow-signer's HD children, whose ledger balances equal their
// UTXO sets, which match the node.
func TestDevStackBTC(t *testing.T) {
	st := stacktest.Load(t)
	c, ok := st.Chains["BTC"]
	if !ok || !c.IsBTC() {
		t.Fatal("stack.json has no chains.BTC with btc_rpc_url: the dev stack runs btcd (`make up` writes it)")
	}
	require.Equal(t, "simnet", c.Network)
	require.Equal(t, "BTC", c.Native.Symbol)
	require.EqualValues(t, 8, c.Native.Decimals)
	require.Positive(t, c.Confirmations)
	params, err := btc.Params(c.Network)
	require.NoError(t, err)
	faucetAddr, err := btc.WIFAddress(c.FaucetPrivateKey, params)
	require.NoError(t, err)
	require.Equal(t, c.FaucetAddress, faucetAddr)

	client, err := btc.Dial(btc.ClientConfig{URL: c.BTCRPCURL, User: c.RPCUser, Password: c.RPCPassword, Network: c.Network})
	require.NoError(t, err)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, client.CheckNetwork(ctx))
	start, _, err := client.Head(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, start, int64(432), "mined past segwit's activation at the first start")

	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	a, err := btc.KeyAddress(key.PubKey(), params)
	require.NoError(t, err)
	faucet, err := btc.NewFaucet(client, c.FaucetPrivateKey)
	require.NoError(t, err)
	tx, err := faucet.Pay(ctx, a.EncodeAddress(), 25_000_000)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r, err := client.Tx(ctx, tx.TxHash())
		return err == nil && r.Confirmations >= 1
	}, time.Minute, 500*time.Millisecond, "the stack's miner mines the faucet's payment")
	txs, err := client.AddressTxs(ctx, a, 0, 10, false)
	require.NoError(t, err)
	require.Len(t, txs, 1)
	require.Equal(t, tx.TxHash().String(), txs[0].Txid)
	head, _, err := client.Head(ctx)
	require.NoError(t, err)
	require.Greater(t, head, start, "btcd mines on by itself")

	// The managed wallets: payflow-signer's HD children, each holding in
	// the ledger what its UTXO set holds confirmed, which the node agrees
	// with.
	require.NotEmpty(t, c.ManagedWallets)
	require.Contains(t, c.ManagedWallets, c.CollectionAddress)
	db := st.DB(t)
	set := btc.NewUTXOs(db, "BTC")
	for _, w := range c.ManagedWallets {
		var n int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM wallets WHERE chain='BTC' AND address=? AND key_holder='signer' AND hd_index IS NOT NULL",
			w).Scan(&n))
		require.Equal(t, 1, n, "%s is a BTC wallet, the signer's HD child", w)
		confirmed, _, err := set.Balance(ctx, w)
		require.NoError(t, err)
		require.Positive(t, confirmed, "%s is funded", w)
		var ledgerTotal decimal.Decimal
		require.NoError(t, db.QueryRowContext(ctx, "SELECT COALESCE(SUM(available+held),0) FROM balances WHERE chain='BTC' AND address=? AND symbol='BTC'",
			w).Scan(&ledgerTotal))
		require.Equal(t, decimal.New(confirmed, -8).String(), ledgerTotal.String(), "%s: the ledger equals the UTXO set", w)
		r, err := set.Reconcile(ctx, client, w, int64(c.Confirmations))
		require.NoError(t, err)
		require.True(t, r.Matched(), "%s: the UTXO set matches the node: %+v", w, r)
	}
}
