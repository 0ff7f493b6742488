package activities_test

import (
	"context"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"payflow/activities"
	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
)

// TestBTCSweepPaysItsFeeFromTheCoins: on a Bitcoin chain (a real btcd) a
// deposit wallet's sweep reserves all the wallet holds (nothing kept back
// for fees), needs no gas top-up, holds no gas apart, and is signed as one
// transaction spending every coin to one output at the collection wallet;
// once mined, the inspection says what reached the collection and where,
// settling leaves the deposit wallet at 0, and the collection is credited
// that, once, under the key the scanner books the output's deposit with.
func TestBTCSweepPaysItsFeeFromTheCoins(t *testing.T) {
	n := btctest.Start(t)
	ctx := context.Background()
	db := stacktest.TestDB(t, "actbtcsweep")
	require.NoError(t, ledger.Migrate(ctx, db))
	led, wallets := ledger.New(db), ledger.NewWallets(db, nil)
	params := n.Client.Params()

	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	a, err := btc.KeyAddress(key.PubKey(), params)
	require.NoError(t, err)
	dep := a.EncodeAddress()
	_, err = wallets.RegisterHD(ctx, "BTC", ledger.KindDeposit, "sweep test", dep, 1)
	require.NoError(t, err)
	wif, err := btc.NewWIF(params)
	require.NoError(t, err)
	collection, err := btc.WIFAddress(wif, params)
	require.NoError(t, err)

	// Three deposits, in the set and credited as the scanner and the
	// Deposit workflow book them: 4.5 BTC, above the 3 BTC threshold.
	coins := []int64{150_000_000, 200_000_000, 100_000_000}
	outs := make([]btc.Output, len(coins))
	for i, s := range coins {
		outs[i] = btc.Output{Address: dep, Sats: s}
	}
	funding, err := n.Faucet.PayMany(ctx, outs)
	require.NoError(t, err)
	block := n.Mine(t, 1)[0]
	height, _ := n.Head(t)
	set := btc.NewUTXOs(db, "BTC")
	for i, s := range coins {
		u := btc.UTXO{TxID: funding.TxHash().String(), Vout: uint32(i), Address: dep, Sats: s}
		require.NoError(t, set.Add(ctx, u))
		require.NoError(t, set.Confirm(ctx, u.TxID, u.Vout, height, block.String()))
		_, err := led.Credit(ctx, ledger.CreditInput{Chain: "BTC", Address: dep, Symbol: "BTC", Amount: decimal.New(s, -btc.Decimals),
			TxHash: u.TxID, LogIndex: uint(i), Reference: "deposit"})
		require.NoError(t, err)
	}

	chainCfg := config.BTCChain{Network: "simnet", Confirmations: 1, MaxFeeRate: 50, CollectionAddress: collection,
		Native: config.NativeCoin{Symbol: "BTC", Decimals: btc.Decimals, SweepThreshold: "3"}}
	fees, err := btc.NewFees("BTC", db, n.Client, btc.FeeConfig{Rate: 2, MaxRate: 50})
	require.NoError(t, err)
	tracked := btc.NewTracked(db, "BTC")
	acts := &activities.Activities{Chain: "BTC", Assets: chainCfg.Assets(), Collection: collection, Confirmations: 1, DB: db,
		Transfers: btc.NewPayments("BTC", db, n.Client, tracked, btctest.KeySigner{Key: key, Params: n.Client.Params()}, fees), Fees: fees,
		Balances: btc.NewBalances(db, "BTC"), Reads: btc.NewReads(n.Client, btc.NewWatched(db, "BTC")),
		Ledger: led, Wallets: wallets}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	run := func(fn, in, out any) {
		t.Helper()
		v, err := env.ExecuteActivity(fn, in)
		require.NoError(t, err)
		if out != nil {
			require.NoError(t, v.Get(out))
		}
	}

	const wf = "sweep-BTC-test"
	resKey := wf + "/BTC"
	var r activities.SweepReserveResult
	run(acts.ReserveSweep, activities.SweepReserveInput{Key: resKey, WorkflowID: wf, Address: dep, Symbol: "BTC"}, &r)
	require.True(t, r.Reserved)
	require.True(t, r.FeeFromAmount)
	require.Equal(t, "4.5", r.Amount.String(), "all of it: nothing kept back for fees")
	var gas activities.SweepGasResult
	run(acts.CheckSweepGas, activities.SweepGasInput{Address: dep, Collection: collection,
		Items: []activities.SweepItem{{Symbol: "BTC", Amount: r.Amount, FeeFromAmount: true}}}, &gas)
	require.Equal(t, "0", gas.TopUpWei, "no gas to top up")

	var signed activities.TransferResult
	sign := activities.TransferInput{WorkflowID: wf, Step: "sweep-BTC", Guard: resKey, Symbol: "BTC", From: dep, To: collection,
		Amount: r.Amount, FeeFromAmount: true}
	run(acts.SignTransfer, sign, &signed)
	var again activities.TransferResult
	run(acts.SignTransfer, sign, &again)
	require.Equal(t, signed.TxHash, again.TxHash, "signed once")
	_, err = led.GetReservation(ctx, activities.GasKey(wf, "sweep-BTC"))
	require.ErrorIs(t, err, ledger.ErrReservationNotFound, "no gas held apart: the fee is in the reservation")
	run(acts.Broadcast, activities.BroadcastInput{WorkflowID: wf, Step: "sweep-BTC"}, nil)
	n.Mine(t, 1)

	var insp activities.Inspection
	run(acts.InspectTransfer, activities.InspectInput{WorkflowID: wf, Step: "sweep-BTC"}, &insp)
	require.True(t, insp.Paid && insp.Confirmed, "%+v", insp)
	require.Equal(t, signed.TxHash, insp.TxHash)
	h, err := chainhash.NewHashFromStr(signed.TxHash)
	require.NoError(t, err)
	mined, err := n.Client.Tx(ctx, *h)
	require.NoError(t, err)
	require.Len(t, mined.Vin, 3, "every coin")
	require.Len(t, mined.Vout, 1, "one output, no change")
	received := decimal.NewFromFloat(mined.Vout[0].Value)
	require.Equal(t, received.String(), insp.Received)
	require.Zero(t, insp.Position)

	run(acts.SettleFunds, activities.SettleInput{Key: resKey, TxHash: insp.TxHash,
		Gas: &activities.ChargeInput{WorkflowID: wf, Step: "sweep-BTC", TxHash: insp.TxHash}}, nil)
	pos := insp.Position
	credit := activities.SweepCreditInput{WorkflowID: wf, From: dep, Collection: collection, Symbol: "BTC",
		Amount: protocol.MustAmount(insp.Received), TxHash: insp.TxHash, Position: &pos}
	run(acts.CreditSweep, credit, nil)
	run(acts.CreditSweep, credit, nil)

	b, err := led.Balance(ctx, "BTC", dep, "BTC")
	require.NoError(t, err)
	require.True(t, b.Total().IsZero(), "the deposit wallet holds nothing: %+v", b)
	c, err := led.Balance(ctx, "BTC", collection, "BTC")
	require.NoError(t, err)
	require.True(t, c.Total().Equal(received), "the collection is credited what reached it, once: %s", c.Total())
	credited, err := led.Credited(ctx, "BTC", insp.TxHash, 0)
	require.NoError(t, err)
	require.True(t, credited, "under the key of the output's deposit (txid, output index)")
	fee := decimal.RequireFromString("4.5").Sub(received)
	require.True(t, fee.IsPositive() && fee.LessThan(decimal.RequireFromString("0.001")), "fee %s", fee)
}
