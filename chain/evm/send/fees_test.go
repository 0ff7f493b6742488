package send_test

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/params"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/send"

	"payflow/chain/evm/evmtest"
)

// feeOracle is a FeeOracle over backend with the given cap and caches.
func (f *chainFixture) feeOracle(backend evm.Backend, maxFee *big.Int, cacheTTL time.Duration) *send.FeeOracle {
	f.T.Helper()
	o, err := send.NewFeeOracle(send.FeeConfig{MaxFeeWei: maxFee, FeeCacheTTL: cacheTTL, GasCacheTTL: cacheTTL}, backend)
	if err != nil {
		f.T.Fatal(err)
	}
	return o
}

// networkFees returns the simulated node's base fee and suggested tip now.
func (f *chainFixture) networkFees() (base, tip *big.Int) {
	f.T.Helper()
	head, err := f.Client.HeaderByNumber(f.Ctx, nil)
	if err != nil {
		f.T.Fatal(err)
	}
	tip, err = f.Client.SuggestGasTipCap(f.Ctx)
	if err != nil {
		f.T.Fatal(err)
	}
	return head.BaseFee, tip
}

// TestFeeOracleFeesWithinCap: the max fee is 2×base fee + tip, held to the
// cap; a cap below base fee + tip refuses with ErrFeeCapExceeded.
func TestFeeOracleFeesWithinCap(t *testing.T) {
	f := newChainFixture(t)
	base, suggested := f.networkFees()
	full := new(big.Int).Add(new(big.Int).Mul(base, big.NewInt(2)), suggested)
	justEnough := new(big.Int).Add(base, suggested)
	for _, tc := range []struct {
		name       string
		cap        *big.Int
		wantMaxFee *big.Int
		wantErr    error
	}{
		{"under the cap", evmtest.MaxFeeWei, full, nil},
		{"held to the cap", justEnough, justEnough, nil},
		{"above the cap", new(big.Int).Sub(justEnough, big.NewInt(1)), nil, chain.ErrFeeCapExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tip, maxFee, err := f.feeOracle(f.Client, tc.cap, 0).Fees(f.Ctx)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			if tip.Cmp(suggested) != 0 || maxFee.Cmp(tc.wantMaxFee) != 0 {
				t.Fatalf("tip %s max fee %s, want %s and %s", tip, maxFee, suggested, tc.wantMaxFee)
			}
		})
	}
}

// TestFeeOracleReplacementFees: a replacement outbids its predecessor by
// 12.5% at least, and what the network asks; held to the cap when only the
// network's price is above it; refused when even the bump is.
func TestFeeOracleReplacementFees(t *testing.T) {
	f := newChainFixture(t)
	base, suggested := f.networkFees()
	prev := types.NewTx(&types.DynamicFeeTx{ChainID: big.NewInt(evmtest.SimChainID), GasTipCap: big.NewInt(1),
		GasFeeCap: big.NewInt(1000), Gas: params.TxGas, To: &evmtest.Recipient})

	tip, feeCap, err := f.feeOracle(f.Client, evmtest.MaxFeeWei, 0).ReplacementFees(f.Ctx, prev)
	if err != nil {
		t.Fatal(err)
	}
	network := new(big.Int).Add(new(big.Int).Mul(base, big.NewInt(2)), suggested)
	if tip.Cmp(suggested) != 0 || feeCap.Cmp(network) != 0 {
		t.Fatalf("cheap predecessor: tip %s cap %s, want the network's %s and %s", tip, feeCap, suggested, network)
	}

	dear := types.NewTx(&types.DynamicFeeTx{ChainID: big.NewInt(evmtest.SimChainID), GasTipCap: network, GasFeeCap: network,
		Gas: params.TxGas, To: &evmtest.Recipient})
	tip, feeCap, err = f.feeOracle(f.Client, evmtest.MaxFeeWei, 0).ReplacementFees(f.Ctx, dear)
	if err != nil {
		t.Fatal(err)
	}
	if !atLeastBumped(tip, network) || !atLeastBumped(feeCap, network) || tip.Cmp(feeCap) > 0 {
		t.Fatalf("dear predecessor at %s: tip %s cap %s, want both 12.5%% above and tip <= cap", network, tip, feeCap)
	}

	// The cap admits the bump but not the network's price: held to the cap.
	bumped := new(big.Int).Div(new(big.Int).Mul(big.NewInt(1000), big.NewInt(9)), big.NewInt(8))
	capAt := new(big.Int).Add(bumped, big.NewInt(1))
	if _, feeCap, err = f.feeOracle(f.Client, capAt, 0).ReplacementFees(f.Ctx, prev); err != nil || feeCap.Cmp(capAt) != 0 {
		t.Fatalf("capped replacement: cap %s (%v), want %s", feeCap, err, capAt)
	}
	if _, _, err := f.feeOracle(f.Client, big.NewInt(1000), 0).ReplacementFees(f.Ctx, prev); !errors.Is(err, chain.ErrFeeCapExceeded) {
		t.Fatalf("bump above the cap: %v, want ErrFeeCapExceeded", err)
	}
}

// TestFeeOracleCaches: with a TTL the network fees and a token's gas are
// asked once; without, every time. The cached gas covers a first-time
// recipient, and MaxTransferFee is that gas at the max fee.
func TestFeeOracleCaches(t *testing.T) {
	f := newChainFixture(t)
	for _, tc := range []struct {
		name          string
		ttl           time.Duration
		wantEstimates int64
	}{{"cached", time.Hour, 1}, {"uncached", 0, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			node := &countingNode{Backend: f.Client}
			o := f.feeOracle(node, evmtest.MaxFeeWei, tc.ttl)
			holder := f.Broke // already holds the token: the cheap case
			gas, err := o.TransferGas(f.Ctx, f.Token, f.Sender, holder, big.NewInt(1))
			if err != nil {
				t.Fatal(err)
			}
			fresh := common.HexToAddress("0x00000000000000000000000000000000000fee77")
			gasFresh, err := o.TransferGas(f.Ctx, f.Token, f.Sender, fresh, big.NewInt(1))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ttl > 0 && gasFresh != gas {
				t.Fatalf("cached gas %d then %d", gas, gasFresh)
			}
			if tc.ttl == 0 && gasFresh <= gas {
				t.Fatalf("a first-time recipient costs %d gas, a holder %d: want more", gasFresh, gas)
			}
			_, maxFee, err := o.Fees(f.Ctx)
			if err != nil {
				t.Fatal(err)
			}
			fee, err := o.MaxTransferFee(f.Ctx, f.Token, f.Sender, fresh, big.NewInt(1))
			if err != nil {
				t.Fatal(err)
			}
			if want := new(big.Int).Mul(maxFee, new(big.Int).SetUint64(gasFresh)); fee.Cmp(want) != 0 {
				t.Fatalf("max transfer fee %s, want %s", fee, want)
			}
			wantHeaders := map[bool]int64{true: 1, false: 2}[tc.ttl > 0]
			if e, h := node.estimates.Load(), node.headers.Load(); e != tc.wantEstimates || h != wantHeaders {
				t.Fatalf("%d estimates and %d header reads, want %d and %d", e, h, tc.wantEstimates, wantHeaders)
			}
		})
	}
}

// TestFeeOracleNativeGas: 21000 to an account without code; an estimate with
// headroom to a contract.
func TestFeeOracleNativeGas(t *testing.T) {
	f := newChainFixture(t)
	o := f.feeOracle(f.Client, evmtest.MaxFeeWei, 0)
	if gas, err := o.NativeGas(f.Ctx, f.Sender, evmtest.Recipient, big.NewInt(1)); err != nil || gas != params.TxGas {
		t.Fatalf("to an account: %d gas (%v), want %d", gas, err, params.TxGas)
	}
	if gas, err := o.NativeGas(f.Ctx, f.Sender, evmtest.FalseToken, big.NewInt(1)); err != nil || gas <= params.TxGas {
		t.Fatalf("to a contract: %d gas (%v), want more than %d", gas, err, params.TxGas)
	}
}
