package signer

import (
	"strings"

	"payflow/config"
)

// internalTransfer says whether a reservation paying recipient moves money
// within payflow's treasury rather than out of it: recipient is the chain's
// cold address, as the signer's own configuration names it (never a wallet
// row, which a compromised worker could write). A treasury sweep from a hot
// or collection wallet to cold pays such a reservation: it is signed like
// any payment of a held reservation, and the policies that bound what
// leaves payflow (outflow limits, approval thresholds) do not count it.
func internalTransfer(ch config.ChainConfig, recipient string) bool {
	cold := strings.TrimSpace(ch.ColdAddress)
	return cold != "" && strings.EqualFold(cold, strings.TrimSpace(recipient))
}
