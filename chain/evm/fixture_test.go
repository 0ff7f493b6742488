package evm_test

import (
	"testing"

	"payflow/chain/evm/evmtest"
)

// chainFixture is evmtest.Chain, with this package's helpers.
type chainFixture struct{ *evmtest.Chain }

func newChainFixture(t testing.TB) *chainFixture { return &chainFixture{evmtest.NewChain(t)} }
