package send_test

import (
	"math/big"
	"testing"

	gethcommon "github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"

	"payflow/chain/evm/evmtest"
)

// TestNonceLaneResyncsFromChain: a transaction sent from the hot wallet
// outside payflow takes the lane's next nonce; the next signature skips it
// instead of colliding ("nonce too low"), and both mine.
func TestNonceLaneResyncsFromChain(t *testing.T) {
	f := newChainFixture(t)
	first := f.SignAndSend(f.Request("wf-r1", 1))
	key := evmtest.MustKey(t, evmtest.SenderKeyHex)
	head, _ := f.Client.HeaderByNumber(f.Ctx, nil)
	fee := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), big.NewInt(1e9))
	ext, err := types.SignNewTx(key, types.LatestSignerForChainID(big.NewInt(evmtest.SimChainID)), &types.DynamicFeeTx{
		ChainID: big.NewInt(evmtest.SimChainID), Nonce: first.Nonce + 1, GasTipCap: big.NewInt(1e9), GasFeeCap: fee,
		Gas: params.TxGas, To: &evmtest.Recipient, Value: big.NewInt(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Client.SendTransaction(f.Ctx, ext); err != nil {
		t.Fatal(err)
	}
	second := f.SignAndSend(f.Request("wf-r2", 2))
	if second.Nonce != first.Nonce+2 {
		t.Fatalf("second payflow transfer got nonce %d, want %d (after the outside one)", second.Nonce, first.Nonce+2)
	}
	f.Sim.Commit()
	for _, h := range []string{first.Hash.Hex(), ext.Hash().Hex(), second.Hash.Hex()} {
		f.RequireSuccess(gethcommon.HexToHash(h))
	}
	if n := f.NextNonce(crypto.PubkeyToAddress(key.PublicKey)); n != int64(second.Nonce+1) {
		t.Fatalf("lane at %d, want %d", n, second.Nonce+1)
	}
}
