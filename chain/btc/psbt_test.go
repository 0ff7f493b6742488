package btc_test

import (
	"context"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
)

// wallet is a managed wallet of a test: its key, address, and its coins
// funded by the faucet, confirmed.
type wallet struct {
	key   *btcec.PrivateKey
	addr  string
	coins []btc.UTXO
}

func fundedWallet(t *testing.T, n *btctest.Node, sats ...int64) wallet {
	t.Helper()
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	a, err := btc.KeyAddress(key.PubKey(), n.Client.Params())
	require.NoError(t, err)
	w := wallet{key: key, addr: a.EncodeAddress()}
	outs := make([]btc.Output, len(sats))
	for i, s := range sats {
		outs[i] = btc.Output{Address: w.addr, Sats: s}
	}
	tx, err := n.Faucet.PayMany(context.Background(), outs)
	require.NoError(t, err)
	block := n.Mine(t, 1)[0]
	h, _ := n.Head(t)
	for i, s := range sats {
		w.coins = append(w.coins, btc.UTXO{TxID: tx.TxHash().String(), Vout: uint32(i), Address: w.addr, Sats: s,
			State: btc.UTXOSpendable, Height: h, BlockHash: block.String()})
	}
	return w
}

// signed builds s, signs every input with key and returns the transaction
// and what BuildPSBT said of it.
func signed(t *testing.T, n *btctest.Node, s btc.Spend, key *btcec.PrivateKey) (btc.Built, string, func() error) {
	t.Helper()
	b, err := btc.BuildPSBT(s, n.Client.Params())
	require.NoError(t, err)
	all := make([]int, len(s.Inputs))
	for i := range all {
		all[i] = i
	}
	require.NoError(t, btc.SignPSBT(b.Packet, key, all, n.Client.Params()))
	tx, err := btc.Finalize(b.Packet)
	require.NoError(t, err)
	send := func() error { _, err := n.Client.Send(context.Background(), tx); return err }
	return b, tx.TxHash().String(), send
}

// TestPSBTPaymentReplacedAndMined: a payment from a managed wallet's
// reserved coins, built as a PSBT, signed and sent, is pending in the pool;
// its replacement at a higher fee on the same inputs is accepted (RBF) and
// mined, and the inspection names it mined, the payee holding exactly the
// amount and the wallet its change.
func TestPSBTPaymentReplacedAndMined(t *testing.T) {
	n := btctest.Start(t)
	db := testDB(t, "btcpsbt")
	ctx := context.Background()
	w := fundedWallet(t, n, 60_000_000, 50_000_000)
	set := btc.NewUTXOs(db, "BTC")
	for _, c := range w.coins {
		require.NoError(t, set.Add(ctx, c))
		require.NoError(t, set.Confirm(ctx, c.TxID, c.Vout, c.Height, c.BlockHash))
	}
	payee := addresses(t, n, "psbt payee", 1)[0]
	const amount = 80_000_000
	held, err := set.Reserve(ctx, "pay-psbt", w.addr, func(k int) int64 { return amount + int64(btc.P2WPKHVSize(k, 2))*10 })
	require.NoError(t, err)
	require.Len(t, held, 2)

	spend := btc.Spend{Inputs: held, Outputs: []btc.Output{{Address: payee, Sats: amount}}, Change: w.addr, FeeRate: 2}
	first, firstID, send := signed(t, n, spend, w.key)
	require.NoError(t, send())
	require.NoError(t, send(), "sending the same bytes again is harmless")
	require.EqualValues(t, 110_000_000-amount-first.Fee, first.Change)
	insp, err := btc.NewSpends(n.Client).Inspect(ctx, []string{firstID}, held, 2)
	require.NoError(t, err)
	require.Equal(t, btc.SpendPending, insp.State)

	spend.FeeRate = 10
	second, secondID, send := signed(t, n, spend, w.key)
	require.NoError(t, send(), "the replacement is accepted")
	require.Greater(t, second.Fee, first.Fee)
	require.NoError(t, set.Spend(ctx, "pay-psbt", secondID))
	n.Mine(t, 1)
	require.NoError(t, send(), "sending a mined transaction again is harmless")

	insp, err = btc.NewSpends(n.Client).Inspect(ctx, []string{firstID, secondID}, held, 2)
	require.NoError(t, err)
	require.Equal(t, btc.SpendMined, insp.State)
	require.Equal(t, secondID, insp.TxID)
	require.EqualValues(t, 1, insp.Confirmations)

	mined, err := n.Client.Tx(ctx, mustHash(t, secondID))
	require.NoError(t, err)
	require.Len(t, mined.Vout, 2)
	require.Equal(t, 0.8, mined.Vout[0].Value)
	_, err = n.Client.Tx(ctx, mustHash(t, firstID))
	require.True(t, btc.IsNotFound(err), "the replaced attempt is gone: %v", err)
	c, _, err := set.Balance(ctx, w.addr)
	require.NoError(t, err)
	require.Zero(t, c, "both coins are spent; the change is a new output, booked when seen")
}

// TestPSBTDroppedWhenInputsSpentElsewhere: an attempt whose coin another
// transaction spends is pending while that transaction is shallower than
// the confirmations, then proven dropped; were the other transaction one of
// the payment's attempts, the payment would be mined.
func TestPSBTDroppedWhenInputsSpentElsewhere(t *testing.T) {
	n := btctest.Start(t)
	ctx := context.Background()
	w := fundedWallet(t, n, 20_000_000)
	payees := addresses(t, n, "psbt dropped", 2)
	attempt := btc.Spend{Inputs: w.coins, Outputs: []btc.Output{{Address: payees[0], Sats: 1_000_000}}, Change: w.addr, FeeRate: 2}
	_, attemptID, _ := signed(t, n, attempt, w.key) // signed, never sent
	other := attempt
	other.Outputs = []btc.Output{{Address: payees[1], Sats: 2_000_000}}
	_, otherID, send := signed(t, n, other, w.key)
	require.NoError(t, send())

	insp, err := btc.NewSpends(n.Client).Inspect(ctx, []string{attemptID}, w.coins, 2)
	require.NoError(t, err)
	require.Equal(t, btc.SpendPending, insp.State, "a conflict in the pool proves nothing")
	n.Mine(t, 1)
	insp, err = btc.NewSpends(n.Client).Inspect(ctx, []string{attemptID}, w.coins, 2)
	require.NoError(t, err)
	require.Equal(t, btc.SpendPending, insp.State, "1 deep of 2")
	n.Mine(t, 1)
	insp, err = btc.NewSpends(n.Client).Inspect(ctx, []string{attemptID}, w.coins, 2)
	require.NoError(t, err)
	require.Equal(t, btc.SpendDropped, insp.State)
	require.NotEmpty(t, insp.Reason)

	insp, err = btc.NewSpends(n.Client).Inspect(ctx, []string{attemptID, otherID}, w.coins, 2)
	require.NoError(t, err)
	require.Equal(t, btc.SpendMined, insp.State)
	require.Equal(t, otherID, insp.TxID)
}

// TestSignPSBTRefusesAnotherKeysInput: a key asked to sign an input it does
// not own signs nothing.
func TestSignPSBTRefusesAnotherKeysInput(t *testing.T) {
	n := btctest.Start(t)
	w := fundedWallet(t, n, 5_000_000)
	b, err := btc.BuildPSBT(btc.Spend{Inputs: w.coins, Outputs: []btc.Output{{Address: w.addr, Sats: 1_000_000}}, Change: w.addr,
		FeeRate: 1}, n.Client.Params())
	require.NoError(t, err)
	stranger, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	err = btc.SignPSBT(b.Packet, stranger, []int{0}, n.Client.Params())
	require.ErrorIs(t, err, btc.ErrNotOurInput)
	require.Empty(t, b.Packet.Inputs[0].PartialSigs)
	_, err = btc.Finalize(b.Packet)
	require.Error(t, err, "an unsigned PSBT does not finalise")
}

// TestBuildPSBTFees: the fee is the virtual size times the rate; change
// below the dust limit goes to the fee; inputs that cannot cover the
// outputs and the fee are refused.
func TestBuildPSBTFees(t *testing.T) {
	params, _ := btc.Params("simnet")
	w := "sb1qynlk0t7cz4a4qy2f0ape7drce2e3wxu3m434s3"
	in := []btc.UTXO{{TxID: fakeTxID("in"), Vout: 0, Address: w, Sats: 100_000}}
	b, err := btc.BuildPSBT(btc.Spend{Inputs: in, Outputs: []btc.Output{{Address: w, Sats: 50_000}}, Change: w, FeeRate: 3}, params)
	require.NoError(t, err)
	require.EqualValues(t, btc.P2WPKHVSize(1, 2)*3, b.Fee)
	require.EqualValues(t, 100_000-50_000-b.Fee, b.Change)
	require.Len(t, b.Packet.UnsignedTx.TxOut, 2)
	require.Less(t, b.Packet.UnsignedTx.TxIn[0].Sequence, uint32(0xfffffffe), "replaceable")

	b, err = btc.BuildPSBT(btc.Spend{Inputs: in, Outputs: []btc.Output{{Address: w, Sats: 99_500}}, Change: w, FeeRate: 1}, params)
	require.NoError(t, err)
	require.Zero(t, b.Change)
	require.EqualValues(t, 500, b.Fee, "the dust change is left to the fee")
	require.Len(t, b.Packet.UnsignedTx.TxOut, 1)

	_, err = btc.BuildPSBT(btc.Spend{Inputs: in, Outputs: []btc.Output{{Address: w, Sats: 99_990}}, Change: w, FeeRate: 1}, params)
	require.ErrorIs(t, err, btc.ErrInsufficientCoins)
	_, err = btc.BuildPSBT(btc.Spend{Inputs: in, Outputs: []btc.Output{{Address: w, Sats: 50_000}}, Change: w, FeeRate: 0}, params)
	require.ErrorIs(t, err, btc.ErrFeeTooLow)
}
