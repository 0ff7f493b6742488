package signer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"payflow/config"
	"payflow/custody/signer"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// TestColdAddressIsInternal: a reservation paying the chain's cold address
// (the signer's configuration, any case) is a transfer within the treasury;
// another address, a chain without cold_address, or a wallet the ledger
// calls cold but the signer's configuration does not name, is not.
func TestColdAddressIsInternal(t *testing.T) {
	cold := stacktest.RandomAddress()
	ch := config.ChainConfig{ColdAddress: cold}
	require.True(t, signer.InternalTransfer(ch, cold))
	require.True(t, signer.InternalTransfer(ch, strings.ToUpper(cold[:2])+strings.ToUpper(cold[2:])))
	require.False(t, signer.InternalTransfer(ch, stacktest.RandomAddress()))
	require.False(t, signer.InternalTransfer(config.ChainConfig{}, cold))
	require.False(t, signer.InternalTransfer(ch, ""))
}

// TestSignsATreasurySweepToCold: a hot wallet's transfer of each asset to
// the chain's cold address, paying a held reservation whose recipient is
// that address, is signed by a signer configured with that cold address;
// a transfer to another address than the reservation's is refused.
func TestSignsATreasurySweepToCold(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cold := stacktest.RandomAddress()
	sig := e.newSigner(func(c *signer.Config) {
		eth := c.Chains[chainName]
		eth.ColdAddress = cold
		c.Chains[chainName] = eth
	})
	hot := e.newKey(signerapi.BackendKMS)
	_, err := ledger.NewWallets(e.db, nil).RegisterCold(ctx, chainName, cold)
	require.NoError(t, err)
	for i, asset := range []string{"USDT", "ETH"} {
		res := e.reserve(hot, asset, "250", cold)
		utx := e.tokenTx(uint64(20+i), cold, "250")
		if asset == "ETH" {
			utx = nativeTx(uint64(20+i), cold, "250")
		}
		got, err := sig.Sign(ctx, request(res, "sweep-"+asset+"@20261207T180000Z", 0, res, hot, utx))
		require.NoError(t, err, asset)
		_, sender := decodeSigned(t, got.Raw)
		require.Equal(t, hot, sender)
	}
	res := e.reserve(hot, "USDT", "10", cold)
	other := stacktest.RandomAddress()
	_, err = sig.Sign(ctx, request(res, "sweep-USDT@x", 0, res, hot, e.tokenTx(30, other, "10")))
	e.requireRefused(err, res, "reservation_mismatch", "not 10 USDT for "+strings.ToLower(other))
}
