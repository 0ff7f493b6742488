package evm_test

import (
	"context"
	"errors"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"

	"payflow/chain/evm"
	"payflow/chain/token"

	"payflow/chain/evm/evmtest"
)

// TestTokenDecimalsReadsTheContract: decimals() is read from the token's
// contract (TestUSDT and TestUSDC say 6); an address with no contract, or a
// contract whose decimals() reverts, is ErrNotAToken, not a node failure.
func TestTokenDecimalsReadsTheContract(t *testing.T) {
	ctx := context.Background()
	key := evmtest.MustKey(t, evmtest.DeployerKeyHex)
	deployer := crypto.PubkeyToAddress(key.PublicKey)
	reverter := common.HexToAddress("0x00000000000000000000000000000000000dec01")
	sim := simulated.NewBackend(types.GenesisAlloc{
		deployer: {Balance: new(big.Int).Exp(big.NewInt(10), big.NewInt(21), nil)},
		reverter: {Code: evmtest.RevertCode},
	})
	t.Cleanup(func() { sim.Close() })
	client := sim.Client()
	auth, err := bind.NewKeyedTransactorWithChainID(key, big.NewInt(evmtest.SimChainID))
	if err != nil {
		t.Fatal(err)
	}
	usdt, _, _, err := token.DeployTestUSDT(auth, client)
	if err != nil {
		t.Fatal(err)
	}
	sim.Commit()
	usdc, _, _, err := token.DeployTestUSDC(auth, client)
	if err != nil {
		t.Fatal(err)
	}
	sim.Commit()

	for _, c := range []struct {
		name    string
		at      common.Address
		want    uint8
		wantErr error
	}{
		{"TestUSDT", usdt, 6, nil},
		{"TestUSDC", usdc, 6, nil},
		{"no contract", common.HexToAddress("0x00000000000000000000000000000000000dec02"), 0, evm.ErrNotAToken},
		{"reverting contract", reverter, 0, evm.ErrNotAToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := evm.TokenDecimals(ctx, client, c.at)
			if !errors.Is(err, c.wantErr) || got != c.want {
				t.Fatalf("TokenDecimals = %d, %v; want %d, %v", got, err, c.want, c.wantErr)
			}
		})
	}
}
