package ledger

import (
	"context"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"

	"payflow/internal/sqlrows"
)

// Addresses pages, in address order, through the addresses the ledger
// answers for on chain: every wallet (managed wallets, including those
// never posted to) and every address holding a balance row (watched
// deposit addresses). It returns at most limit addresses after after
// (lowercase; "" from the start).
func (l *Ledger) Addresses(ctx context.Context, chain, after string, limit int) ([]string, error) {
	after = norm(after)
	out, err := sqlrows.Collect(ctx, l.db, sqlrows.String, `SELECT address FROM wallets WHERE chain=? AND address>?
		UNION SELECT address FROM balances WHERE chain=? AND address>? ORDER BY address LIMIT ?`,
		chain, after, chain, after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing the ledger's addresses: %w", err)
	}
	return out, nil
}

// Threshold is an amount of a symbol.
type Threshold struct {
	Symbol string
	Amount decimal.Decimal
}

// SweepQuery asks for one page of deposit wallets holding more than a
// threshold.
type SweepQuery struct {
	Chain string
	// Above: a wallet is listed with each of these symbols whose available
	// balance is strictly above its amount. At least one.
	Above     []Threshold
	Addresses []string // empty = every deposit wallet
	After     string   // list addresses after this one ("" = from the start)
	Limit     int
}

// Holding is a deposit wallet with the symbols it holds above their
// thresholds.
type Holding struct {
	Address string
	Symbols []string // sorted
}

// DepositWalletsAbove lists, in address order and at most q.Limit, the
// deposit wallets payflow holds the key of whose available balance of a
// symbol of q.Above is strictly above its threshold.
func (l *Ledger) DepositWalletsAbove(ctx context.Context, q SweepQuery) ([]Holding, error) {
	if len(q.Above) == 0 {
		return nil, nil
	}
	above := make([]string, 0, len(q.Above))
	args := []any{q.Chain, norm(q.After)}
	for _, t := range q.Above {
		above = append(above, "(b.symbol=? AND b.available>?)")
		args = append(args, t.Symbol, t.Amount)
	}
	var sb strings.Builder
	sb.WriteString(`SELECT b.address, GROUP_CONCAT(b.symbol ORDER BY b.symbol SEPARATOR ',')
		FROM balances b JOIN wallets w ON w.chain=b.chain AND w.address=b.address
		WHERE b.chain=? AND w.kind='deposit' AND w.key_holder <> 'none' AND b.address>?
		AND (` + strings.Join(above, " OR ") + `)`)
	if len(q.Addresses) > 0 {
		sb.WriteString(" AND b.address IN (?" + strings.Repeat(",?", len(q.Addresses)-1) + ")")
		for _, a := range q.Addresses {
			args = append(args, norm(a))
		}
	}
	sb.WriteString(" GROUP BY b.address ORDER BY b.address LIMIT ?")
	args = append(args, q.Limit)
	out, err := sqlrows.Collect(ctx, l.db, func(rows sqlrows.Scanner) (h Holding, err error) {
		var syms string
		err = rows.Scan(&h.Address, &syms)
		h.Symbols = strings.Split(syms, ",")
		return h, err
	}, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("listing deposit wallets to sweep: %w", err)
	}
	return out, nil
}

// JournalSum adds up a wallet's journal amounts for symbol: its total
// (available + held) when every posting kept the books, which is what a
// check of the ledger compares it with.
func (l *Ledger) JournalSum(ctx context.Context, chain, address, symbol string) (decimal.Decimal, error) {
	var sum decimal.Decimal
	if err := l.db.QueryRowContext(ctx, "SELECT COALESCE(SUM(amount),0) FROM journal WHERE chain=? AND address=? AND symbol=?",
		chain, norm(address), symbol).Scan(&sum); err != nil {
		return decimal.Decimal{}, fmt.Errorf("adding up the journal of %s: %w", address, err)
	}
	return sum, nil
}
