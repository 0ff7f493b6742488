package main

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"payflow/chain"
	"payflow/chain/token"
	"payflow/internal/stacktest"
)

type oneKey struct{ k *ecdsa.PrivateKey }

func (o oneKey) Key(context.Context, string, string) (*ecdsa.PrivateKey, error) {
	return crypto.ToECDSA(crypto.FromECDSA(o.k))
}

// fund sends ETH and USDT from the faucet to addr and waits for both.
func fund(ctx context.Context, st *stacktest.Stack, eth *ethclient.Client, addr common.Address, wei, units *big.Int) error {
	fk, err := crypto.HexToECDSA(st.FaucetPrivateKey)
	if err != nil {
		return err
	}
	from := crypto.PubkeyToAddress(fk.PublicKey)
	chainID := big.NewInt(st.ChainID)
	nonce, err := eth.PendingNonceAt(ctx, from)
	if err != nil {
		return err
	}
	tip, _ := eth.SuggestGasTipCap(ctx)
	head, err := eth.HeaderByNumber(ctx, nil)
	if err != nil {
		return err
	}
	fee := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(3)), tip)
	tx1, _ := types.SignNewTx(fk, types.LatestSignerForChainID(chainID), &types.DynamicFeeTx{ChainID: chainID, Nonce: nonce,
		GasTipCap: tip, GasFeeCap: fee, Gas: 21000, To: &addr, Value: wei})
	if err := eth.SendTransaction(ctx, tx1); err != nil {
		return fmt.Errorf("funding ETH: %w", err)
	}
	usdt, err := token.NewTestUSDT(common.HexToAddress(st.Tokens["USDT"].Address), eth)
	if err != nil {
		return err
	}
	opts, _ := bind.NewKeyedTransactorWithChainID(fk, chainID)
	opts.Nonce = new(big.Int).SetUint64(nonce + 1)
	tx2, err := usdt.Transfer(opts, addr, units)
	if err != nil {
		return fmt.Errorf("funding USDT: %w", err)
	}
	for _, tx := range []*types.Transaction{tx1, tx2} {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		r, err := bind.WaitMined(wctx, eth, tx)
		cancel()
		if err != nil || r.Status != 1 {
			return fmt.Errorf("funding tx %s failed: %v", tx.Hash().Hex(), err)
		}
	}
	return nil
}

// benchBroadcaster signs and sends n transfers from one fresh wallet with 32
// concurrent callers (as hundreds of workflows would), then checks the stored
// nonces are exactly 0..n-1 and that the chain mined them all.
func benchBroadcaster(ctx context.Context, st *stacktest.Stack, n int) []result {
	name := "broadcaster, one hot wallet"
	fail := func(err error) []result {
		return []result{{Name: name, Measured: "error", Verdict: "FAIL (correctness)", Note: err.Error()}}
	}
	eth, err := ethclient.DialContext(ctx, st.ETHRPCURL)
	if err != nil {
		return fail(err)
	}
	defer eth.Close()
	key, _ := crypto.GenerateKey()
	addr := crypto.PubkeyToAddress(key.PublicKey)
	ether := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	if err := fund(ctx, st, eth, addr, new(big.Int).Mul(big.NewInt(1000), ether), big.NewInt(int64(n)*10)); err != nil {
		return fail(err)
	}
	db, drop, err := benchDB(ctx, st, "broadcast")
	if err != nil {
		return fail(err)
	}
	defer drop()
	bc, err := chain.NewBroadcaster(chain.BroadcasterConfig{Chain: "ETH", ChainID: big.NewInt(st.ChainID),
		MaxFeeWei: new(big.Int).Mul(big.NewInt(500), big.NewInt(1e9))}, db, eth, oneKey{key}, nil)
	if err != nil {
		return fail(err)
	}
	recipient := common.HexToAddress(stacktest.RandomAddress())
	tok := common.HexToAddress(st.Tokens["USDT"].Address)
	var next atomic.Int64
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				wf := fmt.Sprintf("bench-broadcast-%d", i)
				_, err := bc.Signer.SignTransfer(ctx, chain.TransferRequest{WorkflowID: wf, Step: "transfer", From: addr, To: recipient,
					Token: tok, Units: big.NewInt(1)})
				if err == nil {
					_, err = bc.Sender.Send(ctx, wf, "transfer")
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	rate := float64(n) / el.Seconds()
	var count, distinct, lo, hi int64
	_ = db.QueryRowContext(ctx, "SELECT COUNT(*), COUNT(DISTINCT nonce), MIN(nonce), MAX(nonce) FROM signed_txs").Scan(&count, &distinct, &lo, &hi)
	gapFree := errs.Load() == 0 && count == int64(n) && distinct == int64(n) && lo == 0 && hi == int64(n-1)
	// Every transaction must also be mined: the chain's nonce reaches n.
	deadline := time.Now().Add(3 * time.Minute)
	var mined uint64
	for time.Now().Before(deadline) {
		if mined, _ = eth.NonceAt(ctx, addr, nil); mined == uint64(n) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	r := result{Name: name, Measured: fmt.Sprintf("%.0f tx/s", rate), Target: "≥ 300 tx/s", Verdict: verdict(rate >= 300),
		Note: fmt.Sprintf("%d signed+accepted in %s, 32 callers", n, el.Round(time.Millisecond))}
	check := result{Name: fmt.Sprintf("broadcaster nonces over %d", n), Measured: fmt.Sprintf("0..%d, %d distinct, %d mined", hi, distinct, mined),
		Target: "no gap, no reuse", Verdict: "met"}
	if !gapFree || mined != uint64(n) {
		check.Verdict = "FAIL (correctness)"
		if v := firstErr.Load(); v != nil {
			check.Note = fmt.Sprintf("%d errors, first: %v", errs.Load(), v)
		}
	}
	return []result{r, check}
}
