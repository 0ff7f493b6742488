package btc_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
	"payflow/custody/hd"
)

// accountXPub derives the BIP84 account 0 xpub of seed on params' network,
// as the signer will hand it to the worker.
func accountXPub(t *testing.T, seed []byte, params *chaincfg.Params) string {
	t.Helper()
	k, err := hdkeychain.NewMaster(seed, params)
	require.NoError(t, err)
	for _, i := range btc.AccountPath(params) {
		k, err = k.Derive(i)
		require.NoError(t, err)
	}
	pub, err := k.Neuter()
	require.NoError(t, err)
	return pub.String()
}

// TestAccountBIP84Vectors: the addresses of BIP84's test vector (mnemonic
// "abandon … about", no passphrase), from the account xpub alone.
func TestAccountBIP84Vectors(t *testing.T) {
	seed, err := hd.Seed("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about", "")
	require.NoError(t, err)
	params := &chaincfg.MainNetParams
	acct, err := btc.NewAccount(accountXPub(t, seed, params), params)
	require.NoError(t, err)
	for i, want := range []string{"bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g"} {
		got, err := acct.Address(uint32(i))
		require.NoError(t, err)
		require.Equal(t, want, got, "m/84'/0'/0'/0/%d", i)
	}
	_, err = acct.Address(hd.Hardened)
	require.Error(t, err, "a hardened index is not derivable from a public key")
}

// TestNewAccountRefuses: a private key, another network's key, a key not at
// an account's depth, and garbage are refused, never quoted.
func TestNewAccountRefuses(t *testing.T) {
	seed := sha256.Sum256([]byte("payflow btc account test"))
	simnet, _ := btc.Params("simnet")
	master, err := hdkeychain.NewMaster(seed[:], simnet)
	require.NoError(t, err)
	xprv := master.String()
	mainnetXPub := accountXPub(t, seed[:], &chaincfg.MainNetParams)
	masterPub, err := master.Neuter()
	require.NoError(t, err)
	for name, s := range map[string]string{
		"private key":      xprv,
		"mainnet xpub":     mainnetXPub,
		"not an account":   masterPub.String(),
		"not a key at all": "spub-not-a-key",
	} {
		_, err := btc.NewAccount(s, simnet)
		require.ErrorIs(t, err, btc.ErrAccountKey, name)
		require.NotContains(t, err.Error(), s, name)
	}
	_, err = btc.NewAccount(accountXPub(t, seed[:], simnet), simnet)
	require.NoError(t, err)
}

// TestParseAddress: only P2WPKH addresses of the chain's network are read,
// upper case folded to lower.
func TestParseAddress(t *testing.T) {
	mainnet := &chaincfg.MainNetParams
	a, script, err := btc.ParseAddress("BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU", mainnet)
	require.NoError(t, err)
	require.Equal(t, "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", a.EncodeAddress())
	require.Len(t, script, 22)
	regtest, _ := btc.Params("regtest")
	for _, bad := range []string{
		"bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",                       // mainnet's on regtest
		"mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn",                               // P2PKH
		"bcrt1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyx",                     // bad checksum
		"0x52908400098527886e0f7030069857d2e4169ee7",                       // an EVM address
		"bcrt1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qzf4jry", // P2WSH
	} {
		_, _, err := btc.ParseAddress(bad, regtest)
		require.ErrorIs(t, err, btc.ErrAddress, bad)
	}
}

// TestWIF: a WIF made for a network reads back there with its address, and
// is refused on another network.
func TestWIF(t *testing.T) {
	simnet, _ := btc.Params("simnet")
	wif, err := btc.NewWIF(simnet)
	require.NoError(t, err)
	addr, err := btc.WIFAddress(wif, simnet)
	require.NoError(t, err)
	require.Regexp(t, `^sb1q[0-9a-z]{38}$`, addr)
	_, err = btc.WIFAddress(wif, &chaincfg.MainNetParams)
	require.ErrorIs(t, err, btc.ErrKey)
	require.NotContains(t, err.Error(), wif)
}

// TestDerivedAddressFundedOnNode: on a real btcd, a deposit address derived
// from an account xpub receives coins from the faucet; once mined, the
// node's address index lists the transaction, paying that address the
// exact amount, and the block holds the output.
func TestDerivedAddressFundedOnNode(t *testing.T) {
	n := btctest.Start(t)
	ctx := context.Background()
	params := n.Client.Params()
	require.NoError(t, n.Client.CheckNetwork(ctx))
	seed := sha256.Sum256([]byte("payflow btc funded address test"))
	acct, err := btc.NewAccount(accountXPub(t, seed[:], params), params)
	require.NoError(t, err)
	addr, err := acct.Address(7)
	require.NoError(t, err)
	a, script, err := btc.ParseAddress(addr, params)
	require.NoError(t, err)

	txs, err := n.Client.AddressTxs(ctx, a, 0, 10, false)
	require.NoError(t, err)
	require.Empty(t, txs, "a new address has no transactions")

	const sats = 150_000_123
	txid := n.Pay(t, addr, sats)
	mined := n.Mine(t, 1)

	txs, err = n.Client.AddressTxs(ctx, a, 0, 10, false)
	require.NoError(t, err)
	require.Len(t, txs, 1)
	require.Equal(t, txid.String(), txs[0].Txid)
	require.EqualValues(t, 1, txs[0].Confirmations)
	require.Equal(t, mined[0].String(), txs[0].BlockHash)

	block, err := n.Client.Block(ctx, mined[0])
	require.NoError(t, err)
	var found int
	for _, tx := range block.Transactions {
		if tx.TxHash() != txid {
			continue
		}
		for _, out := range tx.TxOut {
			if string(out.PkScript) == string(script) {
				require.EqualValues(t, sats, out.Value)
				found++
			}
		}
	}
	require.Equal(t, 1, found, "the block holds one output to the address")
}

// TestCheckNetwork: a client configured for another network than the
// node's is refused with ErrWrongNetwork.
func TestCheckNetwork(t *testing.T) {
	n := btctest.Start(t)
	cfg := n.Config
	cfg.Network = "regtest"
	c, err := btc.Dial(cfg)
	require.NoError(t, err)
	defer c.Close()
	err = c.CheckNetwork(context.Background())
	require.True(t, errors.Is(err, btc.ErrWrongNetwork), "got %v", err)
}

func mustHash(t *testing.T, s string) chainhash.Hash {
	t.Helper()
	h, err := chainhash.NewHashFromStr(s)
	require.NoError(t, err)
	return *h
}
