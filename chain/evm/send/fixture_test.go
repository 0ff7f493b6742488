package send_test

import (
	"testing"

	"payflow/chain/evm/evmtest"
)

// chainFixture is evmtest.Chain, with this package's helpers.
type chainFixture struct{ *evmtest.Chain }

func newChainFixture(t testing.TB) *chainFixture { return &chainFixture{evmtest.NewChain(t)} }

// trackerFixture is evmtest.Tracker over a chainFixture.
type trackerFixture struct {
	*chainFixture
	*evmtest.Tracker
}

func newTrackerFixture(t *testing.T) *trackerFixture {
	tf := evmtest.NewTracker(t)
	return &trackerFixture{&chainFixture{tf.Chain}, tf}
}
