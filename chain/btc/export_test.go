package btc

import (
	"context"

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
