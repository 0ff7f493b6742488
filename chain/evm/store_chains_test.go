package evm_test

import (
	"bytes"
	"context"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"

	"payflow/chain/evm"

	"payflow/chain/evm/evmtest"
)

// TestGapFillersOfTwoChainsAreKeptApart: one address
// needs a gap filler at the same nonce on ETH and on BSC. The fillers are
// stored under keys that are equal on both chains (the address and the
// nonce), so signed_txs must key them by chain: both are stored, and each
// chain's store reads back its own chain's bytes, never the other's (which
// its node would refuse for ever). The same bytes signed without a chain id
// and stored on both chains are two rows, and marking one sent leaves the
// other.
func TestGapFillersOfTwoChainsAreKeptApart(t *testing.T) {
	ctx := context.Background()
	db := evmtest.TestDB(t)
	key := evmtest.MustKey(t, evmtest.SenderKeyHex)
	from := crypto.PubkeyToAddress(key.PublicKey)
	const nonce = 7
	sign := func(chainID int64, feeCap int64, to common.Address) *types.Transaction {
		t.Helper()
		tx, err := types.SignNewTx(key, types.LatestSignerForChainID(big.NewInt(chainID)), &types.DynamicFeeTx{
			ChainID: big.NewInt(chainID), Nonce: nonce, GasTipCap: big.NewInt(1e9), GasFeeCap: big.NewInt(feeCap),
			Gas: params.TxGas, To: &to, Value: big.NewInt(1)})
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	type chainCase struct {
		name      string
		chainID   int64
		store     *evm.TxStore
		abandoned string
		filler    *types.Transaction
	}
	cases := []*chainCase{{name: "ETH", chainID: 1337}, {name: "BSC", chainID: 1397}}
	for _, c := range cases {
		var err error
		if c.store, err = evm.NewTxStore(c.name, db); err != nil {
			t.Fatal(err)
		}
		c.abandoned = "wf-abandoned-" + c.name
		if _, err := c.store.Insert(ctx, nil, c.abandoned, "transfer", 0, from, sign(c.chainID, 2e9, evmtest.Recipient)); err != nil {
			t.Fatalf("%s: storing the abandoned transfer: %v", c.name, err)
		}
		c.filler = sign(c.chainID, 3e9, from)
	}
	for _, c := range cases {
		got, err := c.store.Cancel(ctx, c.abandoned, "transfer", from, c.filler)
		if err != nil {
			t.Fatalf("%s: cancelling: %v", c.name, err)
		}
		if got.Hash != c.filler.Hash() {
			t.Errorf("%s: Cancel returned filler %s, want this chain's %s", c.name, got.Hash.Hex(), c.filler.Hash().Hex())
		}
	}
	for _, c := range cases {
		want, err := c.filler.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		holder, err := c.store.AtNonce(ctx, from, nonce)
		if err != nil || !holder.Filler || !bytes.Equal(holder.Raw, want) {
			t.Errorf("%s: AtNonce holds %s/%s filler=%v (%v), want this chain's filler", c.name, holder.WorkflowID,
				holder.Step, holder.Filler, err)
		}
		stored, err := c.store.Stored(ctx, holder.WorkflowID, holder.Step)
		if err != nil || !bytes.Equal(stored.Raw, want) || stored.Hash != c.filler.Hash() {
			t.Errorf("%s: Stored(%s, %s) read %s (%v), want this chain's filler %s", c.name, holder.WorkflowID,
				holder.Step, stored.Hash.Hex(), err, c.filler.Hash().Hex())
		}
		attempts, err := c.store.Attempts(ctx, holder.WorkflowID, holder.Step)
		if err != nil || len(attempts) != 1 || attempts[0].Hash != c.filler.Hash() {
			t.Errorf("%s: Attempts of the filler: %d (%v), want this chain's filler only", c.name, len(attempts), err)
		}
		var failed int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM signed_txs WHERE chain=? AND workflow_id=? AND state='failed'",
			c.name, c.abandoned).Scan(&failed); err != nil || failed != 1 {
			t.Errorf("%s: abandoned transfer failed rows %d (%v), want 1", c.name, failed, err)
		}
	}

	// A transaction signed without a chain id is valid on both chains, with
	// one hash: each chain stores and marks its own row.
	legacy, err := types.SignNewTx(key, types.HomesteadSigner{}, &types.LegacyTx{Nonce: 9, GasPrice: big.NewInt(2e9),
		Gas: params.TxGas, To: &evmtest.Recipient, Value: big.NewInt(1)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if _, err := c.store.Insert(ctx, nil, "wf-replayed", "transfer", 0, from, legacy); err != nil {
			t.Fatalf("%s: storing the chainless transfer: %v", c.name, err)
		}
	}
	if err := cases[0].store.MarkSent(ctx, legacy.Hash()); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"sent", "signed"} {
		s, err := cases[i].store.Stored(ctx, "wf-replayed", "transfer")
		if err != nil || s.State != want {
			t.Errorf("%s: chainless transfer is %q (%v), want %q", cases[i].name, s.State, err, want)
		}
	}
}
