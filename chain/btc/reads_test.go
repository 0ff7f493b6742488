package btc_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"payflow/chain"
	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
)

// TestReadsAnswersTheChainContract: the family-neutral reader on a real
// btcd: head and block hashes, a transaction pending in the pool then
// mined, a deposit proven by output index and satoshis, a watch from the
// head (kept on a repeat, the address in its canonical case), and no
// tokens.
func TestReadsAnswersTheChainContract(t *testing.T) {
	n := btctest.Start(t)
	db := testDB(t, "btcreads")
	ctx := context.Background()
	r := btc.NewReads(n.Client, btc.NewWatched(db, "BTC"))
	addr := addresses(t, n, "reads", 1)[0]

	from, isNew, err := r.Watch(ctx, "BTC", strings.ToUpper(addr))
	require.NoError(t, err)
	require.True(t, isNew)
	head, headHash := n.Head(t)
	require.EqualValues(t, head, from)
	got, err := r.Head(ctx)
	require.NoError(t, err)
	require.EqualValues(t, head, got)
	hash, err := r.BlockHash(ctx, uint64(head))
	require.NoError(t, err)
	require.Equal(t, headHash.String(), hash)
	ws, err := btc.NewWatched(db, "BTC").After(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, ws, 1)
	require.Equal(t, addr, ws[0].Address, "stored lowercase")

	txid := n.Pay(t, addr, 2_100_000).String()
	pending, err := r.Pending(ctx, txid)
	require.NoError(t, err)
	require.True(t, pending)
	claim := chain.DepositClaim{TxHash: txid, Position: 0, To: addr, Units: "2100000"}
	p, err := r.ProveDeposit(ctx, claim)
	require.NoError(t, err)
	require.False(t, p.Mined)

	block := n.Mine(t, 1)[0]
	pending, err = r.Pending(ctx, txid)
	require.NoError(t, err)
	require.False(t, pending)
	p, err = r.ProveDeposit(ctx, claim)
	require.NoError(t, err)
	require.Equal(t, chain.DepositProof{Present: true, Mined: true, BlockNumber: uint64(head + 1), BlockHash: block.String()}, p)
	claim.Units = "2100001"
	p, err = r.ProveDeposit(ctx, claim)
	require.NoError(t, err)
	require.True(t, p.Mined)
	require.False(t, p.Present, "another amount")

	again, isNew, err := r.Watch(ctx, "BTC", addr)
	require.NoError(t, err)
	require.False(t, isNew)
	require.Equal(t, from, again)
	_, _, err = r.Watch(ctx, "USDT", addr)
	require.ErrorIs(t, err, btc.ErrNoTokens)
	_, _, err = r.Watch(ctx, "BTC", "0x52908400098527886e0f7030069857d2e4169ee7")
	require.ErrorIs(t, err, btc.ErrAddress)
	_, err = r.ProveDeposit(ctx, chain.DepositClaim{TxHash: txid, Token: "0xabc", To: addr, Units: "1"})
	require.ErrorIs(t, err, btc.ErrNoTokens)
	pos, err := r.Position(ctx, txid, 3)
	require.NoError(t, err)
	require.EqualValues(t, 3, pos)
}
