package btc_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
)

// TestDepositProof: a claimed deposit is present once its transaction is
// mined on the best chain paying the claimed address the claimed amount at
// the claimed output; a claim of another output, amount or address is
// mined but not present; in the pool, or after its block left the chain,
// it is not mined.
func TestDepositProof(t *testing.T) {
	n := btctest.Start(t)
	ctx := context.Background()
	addrs := addresses(t, n, "deposit proof", 2)
	proofs := btc.NewDeposits(n.Client)
	txid := n.Pay(t, addrs[0], 4_000_000).String()

	p, err := proofs.Prove(ctx, txid, 0, addrs[0], 4_000_000)
	require.NoError(t, err)
	require.Equal(t, btc.DepositProof{}, p, "in the pool: not mined")

	block := n.Mine(t, 1)[0]
	n.Mine(t, 1)
	p, err = proofs.Prove(ctx, txid, 0, addrs[0], 4_000_000)
	require.NoError(t, err)
	head, _ := n.Head(t)
	require.Equal(t, btc.DepositProof{Present: true, Mined: true, Height: head - 1, BlockHash: block.String(), Confirmations: 2}, p)

	for name, claim := range map[string]struct {
		vout uint32
		addr string
		sats int64
	}{
		"another output":  {1, addrs[0], 4_000_000},
		"another amount":  {0, addrs[0], 4_000_001},
		"another address": {0, addrs[1], 4_000_000},
	} {
		p, err := proofs.Prove(ctx, txid, claim.vout, claim.addr, claim.sats)
		require.NoError(t, err)
		require.True(t, p.Mined, name)
		require.False(t, p.Present, name)
	}

	n.Invalidate(t, block)
	p, err = proofs.Prove(ctx, txid, 0, addrs[0], 4_000_000)
	require.NoError(t, err)
	require.False(t, p.Mined, "its block left the chain")
	_, err = proofs.Prove(ctx, fakeTxID("never"), 0, addrs[0], 1)
	require.NoError(t, err, "an unknown transaction is not mined, not an error")
}
