package btc_test

import (
	"bytes"
	"context"
	"math/big"
	"testing"

	"github.com/btcsuite/btcd/wire"
	"github.com/stretchr/testify/require"

	"payflow/chain"
	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
)

// TestPaymentsSweepWholeReplacedAndMined: a transfer whose fee comes from
// its amount (a sweep) spends coins worth exactly its units, the oldest
// first (a newer coin, which the ledger has not credited, stays), to one
// output paying the collection their worth less the fee, with no change;
// signing again signs nothing new; its replacement spends the same coins
// and pays the collection less, at a higher fee; once mined, the
// inspection says what the coins were worth and what reached the
// collection at which output. Coins that cannot make up a whole spend are
// refused as a bad amount, holding nothing.
func TestPaymentsSweepWholeReplacedAndMined(t *testing.T) {
	n := btctest.Start(t)
	db := testDB(t, "btcsweep")
	ctx := context.Background()
	w := fundedWallet(t, n, 30_000_000, 20_000_000, 10_000_000)
	newer := fundedWallet(t, n, 5_000_000)
	newer.coins[0].Address = w.addr // the same wallet, a block later
	set := btc.NewUTXOs(db, "BTC")
	for _, c := range w.coins {
		require.NoError(t, set.Add(ctx, c))
		require.NoError(t, set.Confirm(ctx, c.TxID, c.Vout, c.Height, c.BlockHash))
	}
	require.NoError(t, set.Add(ctx, newer.coins[0]))
	require.NoError(t, set.Confirm(ctx, newer.coins[0].TxID, 0, newer.coins[0].Height, newer.coins[0].BlockHash))
	collection := addresses(t, n, "sweep collection", 1)[0]
	_, collectionScript, err := btc.ParseAddress(collection, n.Client.Params())
	require.NoError(t, err)

	fees, err := btc.NewFees("BTC", db, n.Client, btc.FeeConfig{Rate: 2, MaxRate: 50})
	require.NoError(t, err)
	p := btc.NewPayments("BTC", db, n.Client, btc.NewTracked(db, "BTC"), btctest.KeySigner{Key: w.key, Params: n.Client.Params()}, fees)
	sweep := chain.Transfer{WorkflowID: "sweep-test", Step: "sweep-BTC", From: w.addr, To: collection,
		Units: big.NewInt(60_000_000), Reservation: "sweep-test/BTC", FeeFromAmount: true}
	first, err := p.Sign(ctx, sweep)
	require.NoError(t, err)
	again, err := p.Sign(ctx, sweep)
	require.NoError(t, err)
	require.Equal(t, first.TxHash, again.TxHash, "signed once")

	decode := func(s chain.Signed) *wire.MsgTx {
		tx := new(wire.MsgTx)
		require.NoError(t, tx.Deserialize(bytes.NewReader(s.Raw)))
		return tx
	}
	tx := decode(first)
	require.Len(t, tx.TxIn, 3, "the three coins the ledger knows")
	for _, in := range tx.TxIn {
		require.NotEqual(t, newer.coins[0].TxID, in.PreviousOutPoint.Hash.String(), "the newer coin stays")
	}
	require.Len(t, tx.TxOut, 1, "one output, no change")
	require.Equal(t, collectionScript, tx.TxOut[0].PkScript)
	firstFee := 60_000_000 - tx.TxOut[0].Value
	require.Positive(t, firstFee)
	require.Zero(t, firstFee%int64(btc.P2WPKHVSize(3, 1)), "the fee of three inputs and one output at a whole rate")
	require.NoError(t, p.Send(ctx, first))

	second, err := p.Replace(ctx, "sweep-test", "sweep-BTC", 1)
	require.NoError(t, err)
	tx2 := decode(second)
	require.Len(t, tx2.TxOut, 1)
	require.Less(t, tx2.TxOut[0].Value, tx.TxOut[0].Value, "a replacement pays the collection less, the fee more")
	ins := func(tx *wire.MsgTx) []wire.OutPoint {
		var out []wire.OutPoint
		for _, in := range tx.TxIn {
			out = append(out, in.PreviousOutPoint)
		}
		return out
	}
	require.Equal(t, ins(tx), ins(tx2), "the same coins")
	n.Mine(t, 1)

	insp, err := p.Inspect(ctx, "sweep-test", "sweep-BTC", 1)
	require.NoError(t, err)
	require.Equal(t, chain.TransferMined, insp.State)
	require.Equal(t, second.TxHash, insp.TxHash)
	require.True(t, insp.Succeeded)
	require.EqualValues(t, 60_000_000, insp.Units.Int64())
	require.Equal(t, tx2.TxOut[0].Value, insp.Received.Int64())
	require.Zero(t, insp.Position)
	left, err := set.List(ctx, w.addr)
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, newer.coins[0].TxID, left[0].TxID)
	require.Equal(t, btc.UTXOSpendable, left[0].State)

	_, err = p.Sign(ctx, chain.Transfer{WorkflowID: "sweep-other", Step: "sweep-BTC", From: w.addr, To: collection,
		Units: big.NewInt(4_000_000), Reservation: "sweep-other/BTC", FeeFromAmount: true})
	require.ErrorIs(t, err, chain.ErrBadAmount, "5,000,000 satoshis in one coin never make up 4,000,000")
	require.ErrorIs(t, err, btc.ErrCoinsDisagree)
	left, err = set.List(ctx, w.addr)
	require.NoError(t, err)
	require.Equal(t, btc.UTXOSpendable, left[0].State, "nothing held")
}
