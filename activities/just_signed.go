package activities

import (
	"strings"
	"sync"

	"payflow/chain"
)

// justSignedLimit bounds the attempts remembered for their broadcast: an
// entry whose broadcast never came (its worker's workflow task moved
// elsewhere) is dropped with the others when the limit is reached.
const justSignedLimit = 4096

// justSigned remembers the attempt a sign activity returned, for the
// Broadcast that the workflow runs right after it as a local activity on the
// same worker, so that Broadcast sends it without reading the store again.
// An entry is taken only by a Broadcast naming its transaction hash, which
// names its bytes: whatever was signed or replaced since (by this worker or
// another), the remembered attempt is exactly the transaction the
// workflow asks to send. Anything else reads the store. The zero value is
// ready to use.
type justSigned struct {
	mu sync.Mutex
	m  map[string]chain.Signed // by workflow id, step and hash
}

func justSignedKey(workflowID, step, txHash string) string {
	return workflowID + "\x00" + step + "\x00" + strings.ToLower(txHash)
}

// remember keeps stx for its broadcast.
func (j *justSigned) remember(stx chain.Signed) {
	if len(stx.Raw) == 0 || stx.TxHash == "" {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m == nil || len(j.m) >= justSignedLimit {
		j.m = map[string]chain.Signed{}
	}
	j.m[justSignedKey(stx.WorkflowID, stx.Step, stx.TxHash)] = stx
}

// take returns and forgets the attempt remembered for (workflowID, step)
// with txHash; ok is false when there is none ("" names none).
func (j *justSigned) take(workflowID, step, txHash string) (stx chain.Signed, ok bool) {
	if txHash == "" {
		return chain.Signed{}, false
	}
	k := justSignedKey(workflowID, step, txHash)
	j.mu.Lock()
	defer j.mu.Unlock()
	stx, ok = j.m[k]
	delete(j.m, k)
	return stx, ok
}
