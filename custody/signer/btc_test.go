package signer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/custody/signerapi"
)

// TestBTCAccount: the signer answers its BIP84 Bitcoin account of a
// network, serialised for that network, the same at every call and after
// a restart (it comes from the sealed mnemonic), another for another
// network; an unknown network is a bad request.
func TestBTCAccount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	simnet, _ := btc.Params("simnet")
	acct, err := e.client.BTCAccount(ctx, "simnet")
	require.NoError(t, err)
	require.Equal(t, "simnet", acct.Network)
	require.Equal(t, "m/84'/115'/0'", acct.Path)
	require.True(t, strings.HasPrefix(acct.XPub, "spub"), acct.XPub)
	a, err := btc.NewAccount(acct.XPub, simnet)
	require.NoError(t, err, "the worker can derive its addresses")
	addr, err := a.Address(0)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(addr, "sb1q"), addr)

	again, err := e.newSigner(nil).BTCAccount(ctx, "simnet")
	require.NoError(t, err)
	require.Equal(t, acct, again, "the same mnemonic, the same account")

	main, err := e.client.BTCAccount(ctx, "mainnet")
	require.NoError(t, err)
	require.Equal(t, "m/84'/0'/0'", main.Path)
	require.True(t, strings.HasPrefix(main.XPub, "xpub"))
	require.NotEqual(t, e.sig.AccountXPub(), main.XPub, "not the EVM account")

	_, err = e.client.BTCAccount(ctx, "moonnet")
	require.ErrorIs(t, err, signerapi.ErrBadRequest)
}
