package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/answers"
	"payflow/chain/evm"
	"payflow/chain/token"
	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/rmq"
)

// Aging (-age N) puts N payments' worth of history behind the stack before
// the payment phases, fast, so that they measure an aged stack:
//
//   - the ledger: per payment, through the ledger's and the outbox's own
//     APIs, a reservation of 0.01 USDT on one of the dev wallets (hot,
//     user-1..3), released, its answer (status 0) recorded and marked
//     published, as a payment refused after its reservation leaves them:
//     reservations, journal rows and outbox rows grow, and no balance moves
//     (reconciliation stays matched);
//   - the chain: N USDT transfers of one unit each, from a fresh wallet the
//     faucet funds, in batchTransfer calls that fill the blocks: N Transfer
//     logs in the blocks, to N/10 new holders (a new holder costs the dev
//     chain some 127,000 gas, a known one a few thousand: N new holders
//     would take a block per 450 of them), in a few dozen blocks for
//     100,000.
//
// Not loaded: Temporal's history (the floor measures Temporal), and the
// chain store's signed and tracked transactions (their rows belong to
// payflow's own wallets and nonces, which only payflow's signer signs for).
const (
	agingWriters  = 128        // concurrent ledger writers
	agingSendBulk = 50         // raw transactions per JSON-RPC batch
	agingTxGas    = 15_000_000 // a batchTransfer's gas, under the dev chain's cap per transaction
	agingNewGas   = 135_000    // gas of a transfer to a new holder (some 127,000 on the dev chain)
	agingMaxPerTx = 1_500      // transfers per batchTransfer: 64 bytes each, under the pool's 128 KiB per transaction
)

// agingResult is what a load did.
type agingResult struct {
	n                int
	ledgerTook       time.Duration
	chainTook        time.Duration
	blocks           uint64
	chainTransfers   int
	ledgerPayments   int64
	firstErr         string
	fromBlock, toBlk uint64
	// caughtUp is how long after the load the deposit listener's cursor
	// took to pass its last block (the payment phase starts after).
	caughtUp time.Duration
}

func (r agingResult) row() result {
	res := result{Name: fmt.Sprintf("aging: %d payments loaded before the payment phases", r.n),
		Measured: fmt.Sprintf("ledger %d in %.0f s, chain %d transfers in %.0f s", r.ledgerPayments, r.ledgerTook.Seconds(),
			r.chainTransfers, r.chainTook.Seconds()),
		Target: "—", Verdict: "-",
		Note: fmt.Sprintf("ledger: reservation, release and answer (published) per payment; chain: batchTransfers filling blocks %d..%d (%d), a tenth of the transfers to new holders; the listener read them %.0f s after the load, before the payment phases",
			r.fromBlock, r.toBlk, r.blocks, r.caughtUp.Seconds())}
	if r.firstErr != "" {
		res.Verdict, res.Note = "FAIL (aging)", res.Note+"; first error: "+r.firstErr
	}
	return res
}

// ageStack loads n aged payments into the ledger and the chain at once
// (both at the same time: MariaDB and geth each do their share).
func ageStack(ctx context.Context, st *stacktest.Stack, n int) agingResult {
	res := agingResult{n: n}
	var wg sync.WaitGroup
	var ledgerErr, chainErr error
	wg.Go(func() {
		t0 := time.Now()
		res.ledgerPayments, ledgerErr = ageLedger(ctx, st, n)
		res.ledgerTook = time.Since(t0)
	})
	wg.Go(func() {
		t0 := time.Now()
		res.chainTransfers, res.fromBlock, res.toBlk, chainErr = ageChain(ctx, st, n)
		res.chainTook = time.Since(t0)
		if res.toBlk >= res.fromBlock {
			res.blocks = res.toBlk - res.fromBlock + 1
		}
	})
	wg.Wait()
	if err := errors.Join(ledgerErr, chainErr); err != nil {
		res.firstErr = err.Error()
		return res
	}
	// The load packs 100,000 transfers into a few dozen blocks in a minute
	// or two; the deposit listener may still be reading them when it ends.
	// The aged phase measures payments on a stack that holds them, not a
	// catch-up.
	t0 := time.Now()
	if err := awaitListener(ctx, st, "ETH", res.toBlk, listenerCatchUp); err != nil {
		res.firstErr = err.Error()
	}
	res.caughtUp = time.Since(t0)
	return res
}

// listenerCatchUp bounds awaitListener.
const listenerCatchUp = 10 * time.Minute

// awaitListener waits until chain's deposit listener has processed block
// (its chain_cursor at or past it), or timeout.
func awaitListener(ctx context.Context, st *stacktest.Stack, chainName string, block uint64, timeout time.Duration) error {
	db, err := sql.Open("mysql", st.MySQLDSN)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		c, ok, err := evm.LoadCursor(ctx, db, chainName)
		if err != nil {
			return fmt.Errorf("reading the %s listener's cursor: %w", chainName, err)
		}
		if ok && c.Number >= block {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s listener did not reach block %d within %s (at %d)", chainName, block, timeout, c.Number)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// nopPublisher confirms every answer without sending it: aged answers are
// marked published, and nobody is sent them.
type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, rmq.Message) error { return nil }

// ageLedger records n released payments (see the top of the file).
func ageLedger(ctx context.Context, st *stacktest.Stack, n int) (int64, error) {
	db, err := sql.Open("mysql", st.MySQLDSN)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(agingWriters * 2)
	led := ledger.New(db)
	defer led.Drain()
	out := answers.New(db, nopPublisher{}, map[protocol.Flow]config.QueueConfig{protocol.FlowWithdraw: {}})
	var senders []string
	wallets := ledger.NewWallets(db, nil)
	for _, label := range []string{"hot", "user-1", "user-2", "user-3"} {
		w, err := wallets.ByLabel(ctx, "ETH", label)
		if err != nil {
			return 0, fmt.Errorf("dev wallet %s: %w", label, err)
		}
		senders = append(senders, w.Address)
	}
	run := stacktest.RandomID("")
	amount := protocol.MustAmount("0.01")
	var done atomic.Int64
	var firstErr atomic.Value
	fanOut(agingWriters, n, func(i int) {
		qid := fmt.Sprintf("aged-%s-%d", run, i)
		key := "withdraw-" + qid
		from, to := senders[i%len(senders)], stacktest.RandomAddress()
		body, _ := json.Marshal(protocol.PaymentResponse{QueueID: qid, Status: protocol.StatusFailed, Amount: amount, Chain: "ETH",
			Symbol: "USDT", FromAddress: from, ToAddress: to, Error: "aged by the bench"})
		answer := answers.Answer{MessageID: key + "/result", Flow: protocol.FlowWithdraw, Body: body}
		err := func() error {
			if _, err := led.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: "ETH", Address: from, Symbol: "USDT",
				Amount: amount.Decimal, WorkflowID: key, Recipient: to}); err != nil {
				return err
			}
			// Released through the wallet's group commit (many at a time),
			// the answer recorded and then published: the rows a payment
			// refused after its reservation leaves, written faster than in
			// one transaction each on four wallets' rows.
			if _, err := led.Release(ctx, key); err != nil {
				return err
			}
			if _, err := out.Record(ctx, answer); err != nil {
				return err
			}
			_, err := out.Publish(ctx, protocol.FlowWithdraw, answer.MessageID)
			return err
		}()
		if err != nil {
			firstErr.CompareAndSwap(nil, fmt.Sprintf("aged payment %d: %v", i, err))
			return
		}
		done.Add(1)
	})
	if e := firstErr.Load(); e != nil {
		return done.Load(), errors.New(e.(string))
	}
	return done.Load(), nil
}

// ageChain puts n one-unit USDT transfers to new addresses on the chain
// (see the top of the file) and waits until they are all mined.
func ageChain(ctx context.Context, st *stacktest.Stack, n int) (transfers int, fromBlock, toBlock uint64, err error) {
	rc, err := rpc.DialContext(ctx, st.ETHRPCURL)
	if err != nil {
		return 0, 0, 0, err
	}
	defer rc.Close()
	eth := ethclient.NewClient(rc)
	key, err := crypto.GenerateKey()
	if err != nil {
		return 0, 0, 0, err
	}
	from := crypto.PubkeyToAddress(key.PublicKey)
	if err := fund(ctx, st, eth, from, new(big.Int).Mul(big.NewInt(20), big.NewInt(1e18)), big.NewInt(int64(n))); err != nil {
		return 0, 0, 0, fmt.Errorf("funding the aging wallet: %w", err)
	}
	tokenAddr := common.HexToAddress(st.Tokens["USDT"].Address)
	tokenABI, err := token.TestUSDTMetaData.GetAbi()
	if err != nil {
		return 0, 0, 0, err
	}
	chainID := big.NewInt(st.ChainID)
	signer := types.LatestSignerForChainID(chainID)
	head, err := eth.HeaderByNumber(ctx, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	fromBlock = head.Number.Uint64() + 1
	tip := big.NewInt(1)
	// Full blocks raise the base fee by an eighth each: the cap leaves room
	// for the whole load (the dev chain's base fee starts at a few wei).
	feeCap := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(1000)), big.NewInt(1e9))
	// Recipients: transfer t goes to holder t mod N/10. The first round's
	// transfers create the holders (at agingNewGas each); the second's move
	// to known ones, at the gas the node estimates for its first batch.
	holders := make([]common.Address, max(1, n/10))
	for j := range holders {
		holders[j] = common.HexToAddress(stacktest.RandomAddress())
	}
	pack := func(to []common.Address) ([]byte, error) {
		values := make([]*big.Int, len(to))
		for j := range values {
			values[j] = big.NewInt(1)
		}
		return tokenABI.Pack("batchTransfer", to, values)
	}
	nonce := uint64(0)
	// send signs one batchTransfer per batch, sends them in JSON-RPC
	// batches and waits until the wallet's nonce says all are mined.
	send := func(batches [][]common.Address, gas uint64) error {
		var raws []hexutil.Bytes
		for _, to := range batches {
			data, err := pack(to)
			if err != nil {
				return err
			}
			g := gas
			if g == 0 {
				g = 60_000 + uint64(len(to))*agingNewGas
			}
			tx, err := types.SignNewTx(key, signer, &types.DynamicFeeTx{ChainID: chainID, Nonce: nonce, GasTipCap: tip,
				GasFeeCap: feeCap, Gas: g, To: &tokenAddr, Data: data})
			if err != nil {
				return err
			}
			raw, err := tx.MarshalBinary()
			if err != nil {
				return err
			}
			raws = append(raws, raw)
			nonce++
			transfers += len(to)
		}
		for lo := 0; lo < len(raws); lo += agingSendBulk {
			hi := min(lo+agingSendBulk, len(raws))
			elems := make([]rpc.BatchElem, hi-lo)
			for j := range elems {
				elems[j] = rpc.BatchElem{Method: "eth_sendRawTransaction", Args: []any{raws[lo+j]}, Result: new(common.Hash)}
			}
			if err := rc.BatchCallContext(ctx, elems); err != nil {
				return fmt.Errorf("sending aging transactions: %w", err)
			}
			for _, e := range elems {
				if e.Error != nil {
					return fmt.Errorf("sending an aging transaction: %w", e.Error)
				}
			}
		}
		deadline := time.Now().Add(5*time.Minute + time.Duration(len(raws))*time.Second)
		for {
			mined, err := eth.NonceAt(ctx, from, nil)
			if err == nil && mined >= nonce {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("aging transactions not mined in time: nonce %d of %d", mined, nonce)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	var round1 [][]common.Address
	perNew := int((agingTxGas - 60_000) / agingNewGas)
	for lo := 0; lo < len(holders); lo += perNew {
		round1 = append(round1, holders[lo:min(lo+perNew, len(holders))])
	}
	if err := send(round1, 0); err != nil {
		return transfers, fromBlock, 0, err
	}
	var known []common.Address
	for t := len(holders); t < n; t++ {
		known = append(known, holders[t%len(holders)])
	}
	if len(known) > 0 {
		per, gas := min(agingMaxPerTx, len(known)), uint64(0)
		for {
			data, err := pack(known[:per])
			if err != nil {
				return transfers, fromBlock, 0, err
			}
			est, err := eth.EstimateGas(ctx, ethereum.CallMsg{From: from, To: &tokenAddr, Data: data})
			if err == nil && est*5/4 <= agingTxGas {
				gas = est * 5 / 4
				break
			}
			if per == 1 {
				return transfers, fromBlock, 0, fmt.Errorf("estimating a batchTransfer: %v", err)
			}
			per /= 2
		}
		var round2 [][]common.Address
		for lo := 0; lo < len(known); lo += per {
			round2 = append(round2, known[lo:min(lo+per, len(known))])
		}
		if err := send(round2, gas); err != nil {
			return transfers, fromBlock, 0, err
		}
	}
	toBlock, err = eth.BlockNumber(ctx)
	if err != nil {
		return transfers, fromBlock, 0, err
	}
	// Every batch moved its transfers (a reverted one would have left the
	// wallet its units).
	usdt, err := token.NewTestUSDT(tokenAddr, eth)
	if err != nil {
		return transfers, fromBlock, toBlock, err
	}
	left, err := usdt.BalanceOf(nil, from)
	if err != nil {
		return transfers, fromBlock, toBlock, err
	}
	if left.Sign() != 0 {
		return transfers, fromBlock, toBlock, fmt.Errorf("%s units were not transferred: a batchTransfer reverted", left)
	}
	return transfers, fromBlock, toBlock, nil
}

// agingRows set the flat-out run on the aged stack beside the one before
// the load: payflow's own CPU per payment (every process but Temporal's)
// within 1.15×, and its requests per payment.
func agingRows(fresh, aged paymentRun, n int) []result {
	rows := []result{exactlyOnce("payments before aging", fresh)}
	f, a := outsideTemporal(fresh.cpuBy), outsideTemporal(aged.cpuBy)
	r := result{Name: fmt.Sprintf("payflow's own CPU per payment after %d aged payments / before", n), Measured: "-",
		Target: "≤ 1.15×", Verdict: "-",
		Note: fmt.Sprintf("CPU ms per payment of every process but Temporal's, flat out, same invocation; before: %s; after: %s",
			fresh.cpu, aged.cpu)}
	if f > 0 && a > 0 {
		r.Measured, r.Verdict = fmt.Sprintf("%.2f× (%.1f / %.1f ms)", a/f, a, f), verdict(a/f <= 1.15)
	}
	per := func(p paymentRun, kind string) float64 { return p.calls.sum(kind) / float64(max(p.n, 1)) }
	return append(rows, r, result{Name: "payflow's own requests per payment, aged / before", Target: "(budget)", Verdict: "-",
		Measured: fmt.Sprintf("%.1f / %.1f SQL, %.1f / %.1f RPC", per(aged, "sql"), per(fresh, "sql"), per(aged, "rpc"), per(fresh, "rpc")),
		Note:     fmt.Sprintf("payments/s %.1f / %.1f; after: %s", aged.perSec(), fresh.perSec(), aged.calls.perPayment(aged.n))})
}
