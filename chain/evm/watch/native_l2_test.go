package watch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/params"

	"payflow/chain"
	"payflow/chain/evm/watch"

	"payflow/chain/evm"
	"payflow/chain/evm/evmtest"
)

// fakeL2Node is a JSON-RPC server standing in for an OP-stack node, for a
// unit test (not an end-to-end one): it serves two blocks, the second
// holding a type-0x7e deposit transaction (which every OP-stack block starts
// with, and go-ethereum cannot decode) beside an ordinary value transfer.
type fakeL2Node struct {
	headers []*types.Header             // by number
	txs     map[uint64][]map[string]any // each block's transactions, as the node renders them
	rcpts   map[common.Hash]*types.Receipt
}

func (n *fakeL2Node) blockJSON(h *types.Header, full bool) (map[string]any, error) {
	raw, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	txs := []any{}
	for _, tx := range n.txs[h.Number.Uint64()] {
		if full {
			txs = append(txs, tx)
		} else {
			txs = append(txs, tx["hash"])
		}
	}
	m["transactions"], m["uncles"] = txs, []any{}
	return m, nil
}

func (n *fakeL2Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req struct {
		ID     json.RawMessage   `json:"id"`
		Method string            `json:"method"`
		Params []json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	result, err := n.answer(req.Method, req.Params)
	resp := map[string]any{"jsonrpc": "2.0", "id": req.ID}
	if err != nil {
		resp["error"] = map[string]any{"code": -32601, "message": err.Error()}
	} else {
		resp["result"] = result
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (n *fakeL2Node) answer(method string, params []json.RawMessage) (any, error) {
	switch method {
	case "eth_getBlockByNumber", "eth_getBlockByHash":
		var full bool
		if len(params) > 1 {
			_ = json.Unmarshal(params[1], &full)
		}
		var arg string
		_ = json.Unmarshal(params[0], &arg)
		for _, h := range n.headers {
			if (method == "eth_getBlockByHash" && common.HexToHash(arg) == h.Hash()) ||
				(method == "eth_getBlockByNumber" && (arg == hexutil.EncodeBig(h.Number) || (arg == "latest" && h == n.headers[len(n.headers)-1]))) {
				return n.blockJSON(h, full)
			}
		}
		return nil, nil
	case "eth_getTransactionReceipt":
		var hash common.Hash
		_ = json.Unmarshal(params[0], &hash)
		if r, ok := n.rcpts[hash]; ok {
			return r, nil
		}
		return nil, nil
	}
	return nil, fmt.Errorf("the method %s does not exist/is not available", method)
}

// TestFakeL2NodeNativeDepositBesideUndecodableTxType (a unit test
// with a fake OP-stack node): go-ethereum cannot decode the
// type-0x7e deposit transaction every OP-stack block holds, so BlockByHash
// fails on every block, and the native deposit scan failed with it: the
// listener's cursor never moved and no deposit was seen. Now the block is
// read again transaction by transaction: the deposit transaction is skipped
// (and counted), the ordinary transfer beside it to a watched address is
// delivered, and the cursor moves past the block.
func TestFakeL2NodeNativeDepositBesideUndecodableTxType(t *testing.T) {
	ctx := context.Background()
	db := evmtest.TestDB(t)
	const chainName, l2ChainID = "OPT", 10
	key := evmtest.MustKey(t, evmtest.SenderKeyHex)
	payer := crypto.PubkeyToAddress(key.PublicKey)
	watched := common.HexToAddress("0x00000000000000000000000000000000000a2001")

	parent := &types.Header{Number: big.NewInt(100), Difficulty: new(big.Int), GasLimit: 30_000_000, Time: 1_700_000_000,
		BaseFee: big.NewInt(1e9), TxHash: types.EmptyTxsHash, ReceiptHash: types.EmptyReceiptsHash, UncleHash: types.EmptyUncleHash}
	transfer, err := types.SignNewTx(key, types.LatestSignerForChainID(big.NewInt(l2ChainID)), &types.DynamicFeeTx{
		ChainID: big.NewInt(l2ChainID), Nonce: 4, GasTipCap: big.NewInt(1e6), GasFeeCap: big.NewInt(2e9),
		Gas: params.TxGas, To: &watched, Value: big.NewInt(777)})
	if err != nil {
		t.Fatal(err)
	}
	head := &types.Header{Number: big.NewInt(101), ParentHash: parent.Hash(), Difficulty: new(big.Int), GasLimit: 30_000_000,
		Time: 1_700_000_002, BaseFee: big.NewInt(1e9), TxHash: common.HexToHash("0x01"), ReceiptHash: common.HexToHash("0x02"),
		UncleHash: types.EmptyUncleHash}
	at := func(m map[string]any, index uint64) map[string]any {
		m["blockHash"], m["blockNumber"], m["transactionIndex"] = head.Hash(), hexutil.EncodeBig(head.Number), hexutil.Uint64(index)
		return m
	}
	// The L1 attributes deposit an OP-stack sequencer puts first in every block.
	deposit := at(map[string]any{
		"type": "0x7e", "sourceHash": common.HexToHash("0x5e"), "from": "0xdeaddeaddeaddeaddeaddeaddeaddeaddead0001",
		"to": "0x4200000000000000000000000000000000000015", "mint": "0x0", "value": "0x0", "gas": "0xf4240",
		"isSystemTx": false, "input": "0x440a5e20", "nonce": "0x1", "gasPrice": "0x0", "v": "0x0", "r": "0x0", "s": "0x0",
		"hash": common.HexToHash("0xde9051"), "depositReceiptVersion": "0x1",
	}, 0)
	raw, err := transfer.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var normal map[string]any
	if err := json.Unmarshal(raw, &normal); err != nil {
		t.Fatal(err)
	}
	normal["from"] = payer
	node := &fakeL2Node{
		headers: []*types.Header{parent, head},
		txs:     map[uint64][]map[string]any{101: {deposit, at(normal, 1)}},
		rcpts: map[common.Hash]*types.Receipt{transfer.Hash(): {Type: types.DynamicFeeTxType, Status: types.ReceiptStatusSuccessful,
			CumulativeGasUsed: 70_000, Logs: []*types.Log{}, TxHash: transfer.Hash(), GasUsed: params.TxGas,
			BlockHash: head.Hash(), BlockNumber: head.Number, TransactionIndex: 1, EffectiveGasPrice: big.NewInt(1e9)}},
	}
	srv := httptest.NewServer(node)
	t.Cleanup(srv.Close)
	client, err := ethclient.Dial(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	// The fake node shows the L2 failure: the block does not decode whole.
	if _, err := client.BlockByHash(ctx, head.Hash()); !errors.Is(err, types.ErrTxTypeNotSupported) {
		t.Fatalf("BlockByHash on the fake L2 node: %v, want %v", err, types.ErrTxTypeNotSupported)
	}

	rec := &deliveryLog{}
	l, err := watch.NewListener(watch.ListenerConfig{Chain: chainName, Native: true}, db, client, noDial, nil, rec, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SyncTo(ctx, 100); err != nil { // first start: the cursor at block 100
		t.Fatal(err)
	}
	if _, err := evm.Watch(ctx, db, chainName, "ETH", watched, 101); err != nil {
		t.Fatal(err)
	}
	if err := l.SyncTo(ctx, 101); err != nil {
		t.Fatalf("scanning the block with a deposit transaction: %v", err)
	}
	cur, _, err := l.LoadCursor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Number != 101 || cur.Hash != head.Hash() {
		t.Errorf("cursor at %d/%s, want past block 101", cur.Number, cur.Hash.Hex())
	}
	if len(rec.deps) != 1 {
		t.Fatalf("delivered %d deposits, want the one transfer: %+v", len(rec.deps), rec.deps)
	}
	d := rec.deps[0]
	if d.TxHash != transfer.Hash() || d.To != watched || d.From != payer || d.Value.Int64() != 777 || !d.Native ||
		d.BlockHash != head.Hash() || d.LogIndex != chain.NativeLogIndex {
		t.Errorf("delivered %+v, want 777 wei from %s to %s in %s", d, payer.Hex(), watched.Hex(), transfer.Hash().Hex())
	}
	if got := watch.NativeSkipped(l); got["0x7e"] != 1 || len(got) != 1 {
		t.Errorf("skipped %v, want one 0x7e transaction", got)
	}
}
