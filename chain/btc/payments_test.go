package btc_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/wire"
	"github.com/stretchr/testify/require"

	"payflow/chain"
	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
)

// keySigner is a PSBTSigner holding the paying wallets' keys, as
// payflow-signer does: it signs every input with the key of the request's
// From. fail makes its next calls fail (a signer unavailable, a worker
// crashed before the answer), after the plan is stored.
type keySigner struct {
	t    *testing.T
	n    *btctest.Node
	mu   sync.Mutex
	keys map[string]*btcec.PrivateKey
	fail int
	// asked is the unsigned transaction id of every request, in order.
	asked []string
}

var errSignerDown = errors.New("the signer is not answering")

func (k *keySigner) SignPSBT(_ context.Context, req btc.SignRequest) (*wire.MsgTx, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.asked = append(k.asked, req.Packet.UnsignedTx.TxHash().String())
	if k.fail > 0 {
		k.fail--
		return nil, errSignerDown
	}
	key, ok := k.keys[req.From]
	if !ok {
		return nil, chain.ErrSignerRefused
	}
	all := make([]int, len(req.Packet.Inputs))
	for i := range all {
		all[i] = i
	}
	if err := btc.SignPSBT(req.Packet, key, all, k.n.Client.Params()); err != nil {
		return nil, err
	}
	return btc.Finalize(req.Packet)
}

func (k *keySigner) failNext(n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fail = n
}

func (k *keySigner) requests() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.asked...)
}

// payEnv is one chain of payments on the shared node: each subtest names
// its own chain, so its UTXO set, plans and signed attempts are its own.
type payEnv struct {
	t      *testing.T
	n      *btctest.Node
	db     *sql.DB
	name   string
	set    *btc.UTXOs
	signer *keySigner
}

func newPayEnv(t *testing.T, n *btctest.Node, db *sql.DB, name string) *payEnv {
	return &payEnv{t: t, n: n, db: db, name: name, set: btc.NewUTXOs(db, name),
		signer: &keySigner{t: t, n: n, keys: map[string]*btcec.PrivateKey{}}}
}

// payments is the chain's payments priced at rate satoshis per virtual byte
// (at most maxRate).
func (e *payEnv) payments(rate, maxRate int64) (*btc.Payments, *btc.Fees) {
	e.t.Helper()
	fees, err := btc.NewFees(e.name, e.db, e.n.Client, btc.FeeConfig{Rate: rate, MaxRate: maxRate})
	require.NoError(e.t, err)
	return btc.NewPayments(e.name, e.db, e.n.Client, btc.NewTracked(e.db, e.name), e.signer, fees), fees
}

// wallet funds a managed wallet with coins of sats, mined and spendable in
// the set; the signer holds its key.
func (e *payEnv) wallet(sats ...int64) wallet {
	e.t.Helper()
	w := fundedWallet(e.t, e.n, sats...)
	ctx := context.Background()
	for _, c := range w.coins {
		require.NoError(e.t, e.set.Add(ctx, c))
		require.NoError(e.t, e.set.Confirm(ctx, c.TxID, c.Vout, c.Height, c.BlockHash))
	}
	e.signer.mu.Lock()
	e.signer.keys[w.addr] = w.key
	e.signer.mu.Unlock()
	return w
}

func transfer(wf string, w wallet, to string, sats int64) chain.Transfer {
	return chain.Transfer{WorkflowID: wf, Step: "transfer", From: w.addr, To: to, Units: big.NewInt(sats), Reservation: "res-" + wf}
}

func decodeTx(t *testing.T, raw []byte) *wire.MsgTx {
	t.Helper()
	tx := new(wire.MsgTx)
	require.NoError(t, tx.Deserialize(bytes.NewReader(raw)))
	return tx
}

// onNode is the transaction txid as the node has it, decoded (amounts
// exact), or nil when the node does not know it.
func onNode(t *testing.T, n *btctest.Node, txid string) *wire.MsgTx {
	t.Helper()
	r, err := n.Client.Tx(context.Background(), mustHash(t, txid))
	if btc.IsNotFound(err) {
		return nil
	}
	require.NoError(t, err)
	raw, err := hex.DecodeString(r.Hex)
	require.NoError(t, err)
	return decodeTx(t, raw)
}

func outpoints(tx *wire.MsgTx) []wire.OutPoint {
	out := make([]wire.OutPoint, len(tx.TxIn))
	for i, in := range tx.TxIn {
		out[i] = in.PreviousOutPoint
	}
	return out
}

func script(t *testing.T, n *btctest.Node, addr string) []byte {
	t.Helper()
	_, s, err := btc.ParseAddress(addr, n.Client.Params())
	require.NoError(t, err)
	return s
}

// inputSats sums the coins of w that tx spends; every input must be one.
func inputSats(t *testing.T, w wallet, tx *wire.MsgTx) int64 {
	t.Helper()
	var sum int64
	for _, op := range outpoints(tx) {
		found := false
		for _, c := range w.coins {
			if c.TxID == op.Hash.String() && c.Vout == op.Index {
				sum, found = sum+c.Sats, true
			}
		}
		require.True(t, found, "input %s is a coin of the paying wallet", op)
	}
	return sum
}

// TestPayments runs the Bitcoin payment path (btc.Payments, btc.Fees,
// btc.Balances, btc.Settle) on one private btcd: each subtest its own
// chain name in the database, its own wallets on the node.
func TestPayments(t *testing.T) {
	n := btctest.Start(t)
	db := testDB(t, "btcpayments")
	t.Run("SignOnce", func(t *testing.T) { testSignOnce(t, newPayEnv(t, n, db, "BTC-SIGN")) })
	t.Run("CoinsNeverShared", func(t *testing.T) { testCoinsNeverShared(t, newPayEnv(t, n, db, "BTC-COINS")) })
	t.Run("OneReservationOneTransfer", func(t *testing.T) { testOneReservationOneTransfer(t, newPayEnv(t, n, db, "BTC-ONEKEY")) })
	t.Run("SendInspect", func(t *testing.T) { testSendInspect(t, newPayEnv(t, n, db, "BTC-SEND")) })
	t.Run("Replace", func(t *testing.T) { testReplace(t, newPayEnv(t, n, db, "BTC-RBF")) })
	t.Run("Dropped", func(t *testing.T) { testDropped(t, newPayEnv(t, n, db, "BTC-DROP")) })
	t.Run("FeesAndBalances", func(t *testing.T) { testFeesAndBalances(t, newPayEnv(t, n, db, "BTC-FEES")) })
	t.Run("Rebroadcast", func(t *testing.T) { testRebroadcast(t, newPayEnv(t, n, db, "BTC-REBROADCAST")) })
	t.Run("Settle", func(t *testing.T) { testSettle(t, newPayEnv(t, n, db, "BTC-SETTLE")) })
	t.Run("RefusedFreesCoins", func(t *testing.T) { testRefusedFreesCoins(t, newPayEnv(t, n, db, "BTC-REFUSED")) })
}

// testSignOnce: a step is signed once. Signing it again returns the stored
// attempt without asking the signer; a signer that fails after the plan is
// stored (a crash between plan and signature) is asked again for the very
// same transaction, even though the fee rate changed meanwhile: the plan
// is reused, never rebuilt.
func testSignOnce(t *testing.T, e *payEnv) {
	ctx := context.Background()
	w := e.wallet(30_000_000, 20_000_000)
	payee := addresses(t, e.n, "sign once payee", 1)[0]
	p, _ := e.payments(10, 100)

	tr := transfer("pay-sign-once", w, payee, 25_000_000)
	s, err := p.Sign(ctx, tr)
	require.NoError(t, err)
	again, err := p.Sign(ctx, tr)
	require.NoError(t, err)
	require.Equal(t, s.TxHash, again.TxHash)
	require.Equal(t, s.Raw, again.Raw)
	require.Len(t, e.signer.requests(), 1, "a repeat returns what is stored: the signer is asked once")

	// The signer fails once after the plan is stored; the next Sign runs at
	// three times the fee rate.
	tr = transfer("pay-sign-crash", w, payee, 10_000_000)
	e.signer.failNext(1)
	_, err = p.Sign(ctx, tr)
	require.ErrorIs(t, err, errSignerDown)
	asked := e.signer.requests()
	require.Len(t, asked, 2)
	planned := asked[1]
	plan, err := btc.NewPlans(e.db, e.name).Get(ctx, tr.WorkflowID, tr.Step, 0)
	require.NoError(t, err, "the plan is stored before the signer is asked")
	require.Equal(t, planned, plan.TxID)
	require.EqualValues(t, 10, plan.FeeRate)

	dearer, _ := e.payments(30, 100)
	s, err = dearer.Sign(ctx, tr)
	require.NoError(t, err)
	require.Equal(t, planned, s.TxHash, "the stored plan is signed, not a new one at the new rate")
	require.Equal(t, []string{planned, planned}, e.signer.requests()[1:])
	atts, err := btc.NewSignedTxs(e.db, e.name).Attempts(ctx, tr.WorkflowID, tr.Step)
	require.NoError(t, err)
	require.Len(t, atts, 1)
	require.EqualValues(t, 10, atts[0].FeeRate)
	require.Equal(t, plan.Fee, atts[0].Fee)
	again, err = dearer.Sign(ctx, tr)
	require.NoError(t, err)
	require.Equal(t, s.TxHash, again.TxHash)

	// A worker stopped after storing the signed attempt, before marking its
	// coins spent: the retried Sign marks them, so they leave the wallet's
	// balance and no other payment can ever take them.
	w = e.wallet(6_000_000, 5_000_000)
	tr = transfer("pay-sign-stopped", w, payee, 8_000_000)
	txid, err := p.SignStoredUnspent(ctx, tr)
	require.NoError(t, err)
	s, err = p.Sign(ctx, tr)
	require.NoError(t, err)
	require.Equal(t, txid, s.TxHash)
	held, err := e.set.Held(ctx, tr.Reservation)
	require.NoError(t, err)
	require.Len(t, held, 2)
	for _, c := range held {
		require.Equal(t, btc.UTXOSpent, c.State)
		require.Equal(t, txid, c.SpentTxID)
	}
	confirmed, _, err := e.set.Balance(ctx, w.addr)
	require.NoError(t, err)
	require.Zero(t, confirmed)
}

// testCoinsNeverShared: payments from one wallet hold disjoint coins,
// signed one after the other or at once; a payment the spendable coins
// cannot cover fails with ErrInsufficientCoins and holds nothing.
func testCoinsNeverShared(t *testing.T, e *payEnv) {
	ctx := context.Background()
	const coin = 1_000_000
	w := e.wallet(coin, coin, coin, coin, coin, coin, coin, coin, coin, coin, coin)
	payee := addresses(t, e.n, "coins payee", 1)[0]
	p, _ := e.payments(10, 100)

	// More than the wallet holds: nothing held, and then the whole wallet
	// is still there for the payments that follow.
	tooMuch := transfer("pay-too-much", w, payee, 11*coin)
	_, err := p.Sign(ctx, tooMuch)
	require.ErrorIs(t, err, btc.ErrInsufficientCoins)
	held, err := e.set.Held(ctx, tooMuch.Reservation)
	require.NoError(t, err)
	require.Empty(t, held)

	// Two payments one after the other, two coins each.
	spent := map[wire.OutPoint]string{}
	claim := func(s chain.Signed, inputs int) {
		tx := decodeTx(t, s.Raw)
		require.Len(t, tx.TxIn, inputs)
		for _, op := range outpoints(tx) {
			other, taken := spent[op]
			require.False(t, taken, "coin %s spent by %s and %s", op, other, s.WorkflowID)
			spent[op] = s.WorkflowID
		}
	}
	for _, wf := range []string{"pay-coins-a", "pay-coins-b"} {
		s, err := p.Sign(ctx, transfer(wf, w, payee, 1_500_000))
		require.NoError(t, err)
		claim(s, 2)
	}
	// Four at once, one coin each.
	var wg sync.WaitGroup
	signed := make([]chain.Signed, 4)
	errs := make([]error, 4)
	for i := range signed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			signed[i], errs[i] = p.Sign(ctx, transfer("pay-coins-at-once-"+string(rune('a'+i)), w, payee, 500_000))
		}()
	}
	wg.Wait()
	for i, s := range signed {
		require.NoError(t, errs[i])
		claim(s, 1)
	}
	// One step signed twice at once (a retry started while the first try
	// still runs): one transaction, and the step holds exactly its coins.
	for i := range 3 {
		tr := transfer("pay-coins-same-step-"+string(rune('a'+i)), w, payee, 300_000)
		var got [2]chain.Signed
		var errs [2]error
		var wg sync.WaitGroup
		for j := range got {
			wg.Add(1)
			go func() { defer wg.Done(); got[j], errs[j] = p.Sign(ctx, tr) }()
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.Equal(t, got[0].TxHash, got[1].TxHash)
		claim(got[0], 1)
		held, err := e.set.Held(ctx, tr.Reservation)
		require.NoError(t, err)
		require.Len(t, held, 1, "the step holds the coins it spends, no more")
	}
	// The wallet is empty now.
	last := transfer("pay-coins-none-left", w, payee, 100_000)
	_, err = p.Sign(ctx, last)
	require.ErrorIs(t, err, btc.ErrInsufficientCoins)
	held, err = e.set.Held(ctx, last.Reservation)
	require.NoError(t, err)
	require.Empty(t, held)
	_, err = p.Stored(ctx, last.WorkflowID, last.Step)
	require.ErrorIs(t, err, chain.ErrNotSigned)
	list, err := e.set.List(ctx, w.addr)
	require.NoError(t, err)
	require.Empty(t, list, "every coin is spent by its own payment")
}

// testOneReservationOneTransfer: the coins a reservation holds pay one
// transfer. A second step signed against the same reservation is refused,
// never planned on the coins the first step spent (two transactions of
// one wallet spending the same coins: the node would keep one, and which
// is not payflow's choice).
func testOneReservationOneTransfer(t *testing.T, e *payEnv) {
	ctx := context.Background()
	w := e.wallet(5_000_000, 5_000_000)
	payees := addresses(t, e.n, "one reservation payees", 2)
	p, _ := e.payments(10, 100)
	first := transfer("pay-one-key", w, payees[0], 3_000_000)
	s, err := p.Sign(ctx, first)
	require.NoError(t, err)

	second := first
	second.Step, second.To, second.Units = "another", payees[1], big.NewInt(1_000_000)
	_, err = p.Sign(ctx, second)
	require.Error(t, err)
	_, err = p.Stored(ctx, second.WorkflowID, second.Step)
	require.ErrorIs(t, err, chain.ErrNotSigned)
	_, err = btc.NewPlans(e.db, e.name).Get(ctx, second.WorkflowID, second.Step, 0)
	require.Error(t, err, "nothing planned")
	held, err := e.set.Held(ctx, first.Reservation)
	require.NoError(t, err)
	require.Len(t, held, 1)
	require.Equal(t, s.TxHash, held[0].SpentTxID, "the first step's coin")
	require.Len(t, e.signer.requests(), 1)
}

// testSendInspect: a sent payment is in the node's pool and pending; mined,
// it is mined at its block; the payee gets exactly the amount and the
// paying wallet its change, the inputs less the amount and the stored fee.
func testSendInspect(t *testing.T, e *payEnv) {
	ctx := context.Background()
	w := e.wallet(40_000_000, 25_000_000, 5_000_000)
	payee := addresses(t, e.n, "send payee", 1)[0]
	p, fees := e.payments(10, 100)
	const amount = 50_000_000
	tr := transfer("pay-send", w, payee, amount)
	s, err := p.Sign(ctx, tr)
	require.NoError(t, err)
	require.Equal(t, "signed", s.State)
	require.Nil(t, onNode(t, e.n, s.TxHash), "signed, not sent")

	require.NoError(t, p.Send(ctx, s))
	require.NoError(t, p.Send(ctx, s), "sending again is harmless")
	stored, err := p.Stored(ctx, tr.WorkflowID, tr.Step)
	require.NoError(t, err)
	require.Equal(t, "sent", stored.State)
	pending, err := btc.NewReads(e.n.Client, nil).Pending(ctx, s.TxHash)
	require.NoError(t, err)
	require.True(t, pending, "in the node's pool")
	insp, err := p.Inspect(ctx, tr.WorkflowID, tr.Step, 2)
	require.NoError(t, err)
	require.Equal(t, chain.TransferPending, insp.State)
	require.Equal(t, s.TxHash, insp.TxHash)

	e.n.Mine(t, 1)
	head, _ := e.n.Head(t)
	insp, err = p.Inspect(ctx, tr.WorkflowID, tr.Step, 2)
	require.NoError(t, err)
	require.Equal(t, chain.Inspection{State: chain.TransferMined, TxHash: s.TxHash, BlockNumber: uint64(head), Succeeded: true}, insp)

	tx := onNode(t, e.n, s.TxHash)
	require.NotNil(t, tx)
	fee, mined, err := fees.Paid(ctx, s.TxHash)
	require.NoError(t, err)
	require.True(t, mined)
	in := inputSats(t, w, tx)
	require.EqualValues(t, 65_000_000, in, "the two largest coins")
	require.Len(t, tx.TxOut, 2)
	require.Equal(t, script(t, e.n, payee), tx.TxOut[0].PkScript)
	require.EqualValues(t, amount, tx.TxOut[0].Value, "the payee gets exactly the amount")
	require.Equal(t, script(t, e.n, w.addr), tx.TxOut[1].PkScript, "the change returns to the paying wallet")
	require.Equal(t, in-amount-fee.Int64(), tx.TxOut[1].Value)
	require.EqualValues(t, btc.P2WPKHVSize(2, 2)*10, fee.Int64(), "the plan's rate times its size")
}

// testReplace: a replacement spends exactly the first attempt's coins,
// pays the same payee the same amount at a higher fee, and takes the first
// attempt's place in the node's pool; asked again it is the same; once
// mined, the step is mined with it and a further replacement is told so.
// At the fee cap a replacement is refused with ErrFeeCapExceeded.
func testReplace(t *testing.T, e *payEnv) {
	ctx := context.Background()
	w := e.wallet(30_000_000, 30_000_000, 30_000_000)
	payee := addresses(t, e.n, "replace payee", 1)[0]
	p, fees := e.payments(10, 100)
	const amount = 45_000_000
	tr := transfer("pay-replace", w, payee, amount)
	s0, err := p.Sign(ctx, tr)
	require.NoError(t, err)
	require.NoError(t, p.Send(ctx, s0))

	// The signer fails once on attempt 1, after its plan is stored; asked
	// again, at another fee rate, attempt 1 is that plan.
	e.signer.failNext(1)
	_, err = p.Replace(ctx, tr.WorkflowID, tr.Step, 1)
	require.ErrorIs(t, err, errSignerDown)
	asked := e.signer.requests()
	dearer, _ := e.payments(40, 100)
	s1, err := dearer.Replace(ctx, tr.WorkflowID, tr.Step, 1)
	require.NoError(t, err)
	require.Equal(t, asked[len(asked)-1], s1.TxHash, "the stored plan of attempt 1")
	require.False(t, s1.Mined)
	require.Equal(t, 1, s1.Attempt)
	require.NotEqual(t, s0.TxHash, s1.TxHash)
	tx0, tx1 := decodeTx(t, s0.Raw), decodeTx(t, s1.Raw)
	require.Equal(t, outpoints(tx0), outpoints(tx1), "the same coins")
	require.Equal(t, tx0.TxOut[0], tx1.TxOut[0], "the same payee, the same amount")
	atts, err := btc.NewSignedTxs(e.db, e.name).Attempts(ctx, tr.WorkflowID, tr.Step)
	require.NoError(t, err)
	require.Len(t, atts, 2)
	require.Greater(t, atts[1].Fee, atts[0].Fee)
	require.Greater(t, atts[1].FeeRate, atts[0].FeeRate)
	in := inputSats(t, w, tx1)
	require.Equal(t, in-amount-atts[1].Fee, tx1.TxOut[1].Value, "the higher fee comes out of the change")
	require.Nil(t, onNode(t, e.n, s0.TxHash), "the node dropped attempt 0 for its replacement")
	require.NotNil(t, onNode(t, e.n, s1.TxHash))
	require.Equal(t, "sent", atts[1].State)

	again, err := p.Replace(ctx, tr.WorkflowID, tr.Step, 1)
	require.NoError(t, err)
	require.Equal(t, s1.TxHash, again.TxHash, "attempt 1 is signed once")
	_, err = p.Replace(ctx, tr.WorkflowID, tr.Step, 3)
	require.Error(t, err, "attempts come in order")

	e.n.Mine(t, 1)
	head, _ := e.n.Head(t)
	insp, err := p.Inspect(ctx, tr.WorkflowID, tr.Step, 2)
	require.NoError(t, err)
	require.Equal(t, chain.TransferMined, insp.State)
	require.Equal(t, s1.TxHash, insp.TxHash)
	require.EqualValues(t, head, insp.BlockNumber)
	mined, err := p.Replace(ctx, tr.WorkflowID, tr.Step, 2)
	require.NoError(t, err)
	require.True(t, mined.Mined, "nothing new is signed once an attempt is mined")
	require.Equal(t, s1.TxHash, mined.TxHash)
	_, err = btc.NewPlans(e.db, e.name).Get(ctx, tr.WorkflowID, tr.Step, 2)
	require.Error(t, err, "no attempt 2 is planned")
	fee, ok, err := fees.Paid(ctx, s0.TxHash)
	require.NoError(t, err)
	require.False(t, ok, "attempt 0 is never mined")
	require.Nil(t, fee)
	fee, ok, err = fees.Paid(ctx, s1.TxHash)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, atts[1].Fee, fee.Int64())

	// Capped at 12 sat/vB: attempt 1 pays the cap, attempt 2 cannot pay
	// more.
	capped, _ := e.payments(10, 12)
	tr = transfer("pay-replace-capped", w, payee, 10_000_000)
	s0, err = capped.Sign(ctx, tr)
	require.NoError(t, err)
	require.NoError(t, capped.Send(ctx, s0))
	s1, err = capped.Replace(ctx, tr.WorkflowID, tr.Step, 1)
	require.NoError(t, err)
	atts, err = btc.NewSignedTxs(e.db, e.name).Attempts(ctx, tr.WorkflowID, tr.Step)
	require.NoError(t, err)
	require.EqualValues(t, 12, atts[1].FeeRate, "a quarter more than 10, rounded down, is the cap")
	_, err = capped.Replace(ctx, tr.WorkflowID, tr.Step, 2)
	require.ErrorIs(t, err, chain.ErrFeeCapExceeded)
	stored, err := capped.Stored(ctx, tr.WorkflowID, tr.Step)
	require.NoError(t, err)
	require.Equal(t, s1.TxHash, stored.TxHash, "attempt 1 stays the latest, in flight")
	require.NotNil(t, onNode(t, e.n, s1.TxHash))
}

// testDropped: a payment whose coins another transaction spent is pending
// while that transaction is shallower than the confirmations asked, then
// proven dropped, with a reason.
func testDropped(t *testing.T, e *payEnv) {
	ctx := context.Background()
	w := e.wallet(8_000_000, 7_000_000)
	payees := addresses(t, e.n, "dropped payees", 2)
	p, _ := e.payments(10, 100)
	tr := transfer("pay-dropped", w, payees[0], 12_000_000)
	s, err := p.Sign(ctx, tr)
	require.NoError(t, err)
	require.NoError(t, p.Send(ctx, s))

	// Someone with the wallet's key spends the same coins elsewhere, at a
	// higher fee: the node replaces the payment with it.
	held, err := e.set.Held(ctx, tr.Reservation)
	require.NoError(t, err)
	require.Len(t, held, 2)
	_, otherID, send := signed(t, e.n, btc.Spend{Inputs: held, Outputs: []btc.Output{{Address: payees[1], Sats: 3_000_000}},
		Change: w.addr, FeeRate: 40}, w.key)
	require.NoError(t, send())
	require.Nil(t, onNode(t, e.n, s.TxHash), "the node dropped the payment")

	inspect := func(confirmations uint64) chain.Inspection {
		insp, err := p.Inspect(ctx, tr.WorkflowID, tr.Step, confirmations)
		require.NoError(t, err)
		return insp
	}
	require.Equal(t, chain.TransferPending, inspect(2).State, "a conflict in the pool proves nothing")
	e.n.Mine(t, 1)
	require.Equal(t, chain.TransferPending, inspect(2).State, "1 deep of 2")
	e.n.Mine(t, 1)
	insp := inspect(2)
	require.Equal(t, chain.TransferDropped, insp.State)
	require.Equal(t, s.TxHash, insp.TxHash)
	require.NotEmpty(t, insp.Reason)
	require.Equal(t, chain.TransferPending, inspect(3).State, "2 deep of 3")
	require.NotNil(t, onNode(t, e.n, otherID))
}

// testFeesAndBalances: Gas counts the inputs Sign will pick, plus one; Paid
// is the stored fee, and only once mined; Balance is the set's confirmed
// balance of the wallet.
func testFeesAndBalances(t *testing.T, e *payEnv) {
	ctx := context.Background()
	w := e.wallet(3_000_000, 2_000_000, 1_000_000)
	payee := addresses(t, e.n, "fees payee", 1)[0]
	p, fees := e.payments(10, 100)
	bal := btc.NewBalances(e.db, e.name)
	balance := func() int64 {
		b, err := bal.Balance(ctx, "", w.addr, nil)
		require.NoError(t, err)
		confirmed, _, err := e.set.Balance(ctx, w.addr)
		require.NoError(t, err)
		require.Equal(t, confirmed, b.Int64(), "the set's confirmed balance")
		return b.Int64()
	}
	require.EqualValues(t, 6_000_000, balance())
	// A large output not yet confirmed: no payment may pick it, no balance
	// counts it.
	require.NoError(t, e.set.Add(ctx, btc.UTXO{TxID: fakeTxID("fees unconfirmed"), Address: w.addr, Sats: 50_000_000}))
	require.EqualValues(t, 6_000_000, balance())

	for _, c := range []struct {
		sats   int64
		inputs int
	}{{2_000_000, 1}, {4_000_000, 2}, {5_500_000, 3}, {9_000_000, 3}} {
		gas, err := fees.Gas(ctx, "", w.addr, payee, big.NewInt(c.sats))
		require.NoError(t, err)
		require.EqualValues(t, btc.P2WPKHVSize(c.inputs+1, 2), gas, "%d satoshis take %d coins", c.sats, c.inputs)
	}
	_, err := fees.Gas(ctx, "0xtoken", w.addr, payee, big.NewInt(1_000))
	require.ErrorIs(t, err, chain.ErrBadAmount)

	const amount = 4_000_000
	gas, err := fees.Gas(ctx, "", w.addr, payee, big.NewInt(amount))
	require.NoError(t, err)
	tr := transfer("pay-fees", w, payee, amount)
	s, err := p.Sign(ctx, tr)
	require.NoError(t, err)
	tx := decodeTx(t, s.Raw)
	require.Len(t, tx.TxIn, 2, "the coins Gas counted")
	require.EqualValues(t, btc.P2WPKHVSize(2, 2), s.Gas)
	require.Less(t, s.Gas, gas)
	require.EqualValues(t, 1_000_000, balance(), "the spent coins have left")

	fee, mined, err := fees.Paid(ctx, s.TxHash)
	require.NoError(t, err)
	require.False(t, mined, "signed, not sent")
	require.Nil(t, fee)
	require.NoError(t, p.Send(ctx, s))
	_, mined, err = fees.Paid(ctx, s.TxHash)
	require.NoError(t, err)
	require.False(t, mined, "in the pool")
	e.n.Mine(t, 1)
	fee, mined, err = fees.Paid(ctx, s.TxHash)
	require.NoError(t, err)
	require.True(t, mined)
	atts, err := btc.NewSignedTxs(e.db, e.name).Attempts(ctx, tr.WorkflowID, tr.Step)
	require.NoError(t, err)
	require.Equal(t, atts[0].Fee, fee.Int64())
	require.Equal(t, inputSats(t, w, tx)-amount-tx.TxOut[1].Value, fee.Int64(), "what the transaction pays")
	_, mined, err = fees.Paid(ctx, fakeTxID("never signed"))
	require.NoError(t, err)
	require.False(t, mined)
}

// testSettle: an output left unconfirmed whose transaction the node shows
// mined at least confirmations deep becomes spendable; one shallower, or in
// the pool only, stays unconfirmed.
func testSettle(t *testing.T, e *payEnv) {
	ctx := context.Background()
	addrs := addresses(t, e.n, "settle wallets", 3)
	add := func(addr string, sats int64) btc.UTXO {
		tx, err := e.n.Faucet.Pay(ctx, addr, sats)
		require.NoError(t, err)
		o := btc.UTXO{TxID: tx.TxHash().String(), Address: addr, Sats: sats}
		for i, out := range tx.TxOut {
			if out.Value == sats && bytes.Equal(out.PkScript, script(t, e.n, addr)) {
				o.Vout = uint32(i)
			}
		}
		require.NoError(t, e.set.Add(ctx, o), "seen, its confirmation never told")
		return o
	}
	deep := add(addrs[0], 1_000_000)
	e.n.Mine(t, 1)
	shallow := add(addrs[1], 2_000_000)
	e.n.Mine(t, 2)
	pooled := add(addrs[2], 3_000_000)

	settled, err := btc.Settle(ctx, e.set, e.n.Client, 3)
	require.NoError(t, err)
	require.Equal(t, 1, settled)
	state := func(o btc.UTXO) btc.UTXO {
		list, err := e.set.List(ctx, o.Address)
		require.NoError(t, err)
		require.Len(t, list, 1)
		return list[0]
	}
	got := state(deep)
	require.Equal(t, btc.UTXOSpendable, got.State)
	head, _ := e.n.Head(t)
	require.Equal(t, head-2, got.Height, "the block it is mined in")
	require.Equal(t, btc.UTXOUnconfirmed, state(shallow).State, "2 deep of 3")
	require.Equal(t, btc.UTXOUnconfirmed, state(pooled).State, "in the pool only")

	e.n.Mine(t, 1)
	settled, err = btc.Settle(ctx, e.set, e.n.Client, 3)
	require.NoError(t, err)
	require.Equal(t, 1, settled, "the shallow one is 3 deep now")
	require.Equal(t, btc.UTXOSpendable, state(shallow).State)
	require.Equal(t, btc.UTXOUnconfirmed, state(pooled).State, "1 deep of 3")
	settled, err = btc.Settle(ctx, e.set, e.n.Client, 3)
	require.NoError(t, err)
	require.Zero(t, settled, "a repeat confirms nothing new")
}

// testRebroadcast: a payment the node accepted and no longer knows (a
// restarted btcd forgets its pool; here the node never had it) is sent
// again, once; one the node holds or mined, and one never accepted (its
// workflow sends it), are left alone.
func testRebroadcast(t *testing.T, e *payEnv) {
	ctx := context.Background()
	w := e.wallet(9_000_000, 8_000_000, 7_000_000, 6_000_000)
	payee := addresses(t, e.n, "rebroadcast payee", 1)[0]
	p, _ := e.payments(10, 100)
	sign := func(wf string) chain.Signed {
		s, err := p.Sign(ctx, transfer(wf, w, payee, 1_000_000))
		require.NoError(t, err)
		return s
	}
	since := time.Now().Add(-time.Hour)
	mined := sign("pay-rebroadcast-mined")
	require.NoError(t, p.Send(ctx, mined))
	e.n.Mine(t, 1)
	pooled := sign("pay-rebroadcast-pooled")
	require.NoError(t, p.Send(ctx, pooled))
	unsent := sign("pay-rebroadcast-unsent")
	forgotten := sign("pay-rebroadcast-forgotten")
	require.NoError(t, btc.NewSignedTxs(e.db, e.name).MarkSent(ctx, forgotten.TxHash))
	require.Nil(t, onNode(t, e.n, forgotten.TxHash))

	n, err := btc.Rebroadcast(ctx, p, since)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NotNil(t, onNode(t, e.n, forgotten.TxHash), "sent again")
	require.Nil(t, onNode(t, e.n, unsent.TxHash), "its workflow sends it")
	n, err = btc.Rebroadcast(ctx, p, since)
	require.NoError(t, err)
	require.Zero(t, n, "the node knows it now")
}

// testRefusedFreesCoins: a payment the signer refuses leaves nothing held:
// its plan is dropped and its coins are spendable again (no other payment
// could take them otherwise, and they would count for ever as reserved).
// Signed later (after a reset, say), it is planned anew and paid.
func testRefusedFreesCoins(t *testing.T, e *payEnv) {
	ctx := context.Background()
	p, _ := e.payments(2, 50)
	w := e.wallet(40_000_000, 30_000_000)
	e.signer.mu.Lock()
	delete(e.signer.keys, w.addr)
	e.signer.mu.Unlock()
	tr := transfer("wf-refused", w, e.n.Faucet.Address(), 10_000_000)
	_, err := p.Sign(ctx, tr)
	require.ErrorIs(t, err, chain.ErrSignerRefused)
	coins, err := e.set.List(ctx, w.addr)
	require.NoError(t, err)
	for _, c := range coins {
		require.Equal(t, btc.UTXOSpendable, c.State, "coin %s:%d is free again", c.TxID, c.Vout)
	}
	var plans int
	require.NoError(t, e.db.QueryRow("SELECT COUNT(*) FROM btc_plans WHERE chain = ? AND workflow_id = 'wf-refused'", e.name).Scan(&plans))
	require.Zero(t, plans, "the refused plan is dropped")

	e.signer.mu.Lock()
	e.signer.keys[w.addr] = w.key
	e.signer.mu.Unlock()
	s, err := p.Sign(ctx, tr)
	require.NoError(t, err)
	require.NoError(t, p.Send(ctx, s))
	require.NotNil(t, onNode(t, e.n, s.TxHash), "planned anew and sent")
}
