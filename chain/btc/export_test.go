package btc

import (
	"context"
	"time"

	"payflow/chain"
)

// SignStoredUnspent runs Sign's first attempt as far as storing the signed
// transaction and stops before its coins are marked spent: a worker that
// stopped between the two. It returns the stored transaction's id.
func (p *Payments) SignStoredUnspent(ctx context.Context, t chain.Transfer) (string, error) {
	pl, err := p.plan(ctx, t)
	if err != nil {
		return "", err
	}
	s, err := signAndStore(ctx, p, pl)
	return s.TxID, err
}

// SetOwnerCheckEvery sets how often t asks whether the owner of a
// transaction that is not mined still runs.
func (t *Tracker) SetOwnerCheckEvery(d time.Duration) { t.ownerEvery = d }
