package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCPUSplitCountsEveryProcessPerPayment: the split is each process's CPU
// over the batch per payment, largest first, with a total that includes the
// bench itself (the fair baseline's workflow worker runs in it); a process
// restarted during the batch (its counter went down) is left out rather
// than counted negative.
func TestCPUSplitCountsEveryProcessPerPayment(t *testing.T) {
	before := map[string]float64{"temporal": 10, "worker": 5, "bench": 1, "starter": 7}
	after := map[string]float64{"temporal": 16, "worker": 8, "bench": 2, "starter": 0.5, "geth": 3}
	s, total := cpuSplit(before, after, 100, "payment")
	require.Equal(t, 100.0, total) // (6 + 3 + 1) s over 100 payments
	require.Equal(t, "CPU ms per payment: total 100.0; temporal 60.0, worker 30.0, bench 10.0", s)
}
