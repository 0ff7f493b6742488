package activities

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/activity"

	"payflow/chain"
	"payflow/config"
	"payflow/ledger"
	"payflow/protocol"
)

// ErrTypePinReorged: the pinned block left the canonical chain while a batch
// was being reconciled; the workflow pins again.
const ErrTypePinReorged = "PinnedBlockReorged"

// Bounds of the search for unmatched transfers, which runs only for a
// mismatch: how many journal entries are read and how many unmatched
// transfers are recorded.
const (
	maxJournalScan = 10_000
	maxUnmatched   = 100
)

// PinInput asks for the block a reconciliation compares against.
type PinInput struct {
	// Confirmations below the head: the ledger credits a deposit only once it
	// is this deep, so balances at the pinned block and the ledger agree.
	Confirmations uint64
}

// PinnedBlock is a block by number and hash, on the worker's chain.
type PinnedBlock struct {
	Chain  string
	Number uint64
	Hash   string
}

// PinBlock returns the block Confirmations below the latest head (block 0 on
// a chain shorter than that).
func (a *Activities) PinBlock(ctx context.Context, in PinInput) (PinnedBlock, error) {
	head, err := a.Reads.Head(ctx)
	if err != nil {
		return PinnedBlock{}, fmt.Errorf("reading head: %w", err)
	}
	var n uint64
	if head > in.Confirmations {
		n = head - in.Confirmations
	}
	h, err := a.Reads.BlockHash(ctx, n)
	if err != nil {
		return PinnedBlock{}, fmt.Errorf("reading header %d: %w", n, err)
	}
	return PinnedBlock{Chain: a.Chain, Number: n, Hash: h}, nil
}

// ReconListInput asks for one page of the addresses to reconcile.
type ReconListInput struct {
	After string // the previous page's Next; "" starts at the first address
	Limit int
}

// ReconList is one page of addresses, in ascending order, and the symbols
// to reconcile each of them in.
type ReconList struct {
	Addresses []string
	Symbols   []string // the configured tokens, sorted
	Next      string   // "" when this was the last page
}

// ListReconWallets pages through the addresses the ledger answers for: every
// wallet of the chain (managed wallets, including those the ledger never
// posted to) and every address that holds a ledger balance (watched deposit
// addresses). Symbols are the configured tokens: a balance in anything else
// has no contract to ask.
func (a *Activities) ListReconWallets(ctx context.Context, in ReconListInput) (ReconList, error) {
	limit := in.Limit
	if limit <= 0 || limit > 1000 {
		limit = 500
	}
	addrs, err := a.Ledger.Addresses(ctx, a.Chain, in.After, limit)
	if err != nil {
		return ReconList{}, fmt.Errorf("listing wallets to reconcile: %w", err)
	}
	out := ReconList{Addresses: addrs, Symbols: a.symbols()}
	if len(out.Addresses) == limit {
		out.Next = out.Addresses[len(out.Addresses)-1]
	}
	return out, nil
}

// symbols lists the chain's tokens and its native coin, sorted.
func (a *Activities) symbols() []string { return a.Assets.Symbols() }

// onChainBalance reads owner's balance of asset at block, in asset units.
func (a *Activities) onChainBalance(ctx context.Context, asset config.Asset, owner string, block *big.Int) (decimal.Decimal, error) {
	units, err := a.Balances.Balance(ctx, tokenOf(asset), owner, block)
	if err != nil {
		return decimal.Decimal{}, err
	}
	return chain.FromUnits(units, asset.Decimals), nil
}

// ReconBatchInput reconciles a batch of addresses at a pinned block.
type ReconBatchInput struct {
	// RunID names the run in the reconciliations table; with (chain, address,
	// symbol) it is the idempotency key of each recorded result.
	RunID     string
	Block     PinnedBlock
	Addresses []string
	Symbols   []string
	// LogsFromBlock is where the search for unmatched transfers starts (e.g.
	// the token's deployment block).
	LogsFromBlock uint64
}

// ReconMismatch is one (address, symbol) whose ledger total and on-chain
// balance differ. Difference = ChainBalance - LedgerTotal.
type ReconMismatch struct {
	Address      string
	Symbol       string
	LedgerTotal  protocol.Amount
	ChainBalance protocol.Amount
	Difference   protocol.Amount
	Unmatched    int // transfers found on one side only
}

// ReconBatchResult sums up a batch.
type ReconBatchResult struct {
	Checked    int
	Mismatches []ReconMismatch
}

// ReconcileWallets compares, for each address and symbol, the ledger total
// (available + held) with balanceOf at the pinned block and records the
// result with ledger.RecordReconciliation. A difference is recorded as a
// mismatch, with the transfers that explain it (unmatched), and logged at
// WARN. Safe to repeat: a result already recorded for the run is kept, and
// counted as it was recorded. If the pinned block is no longer canonical the
// batch records nothing and fails with ErrTypePinReorged.
func (a *Activities) ReconcileWallets(ctx context.Context, in ReconBatchInput) (ReconBatchResult, error) {
	block := new(big.Int).SetUint64(in.Block.Number)
	type pair struct {
		addr, symbol string
		chainBal     decimal.Decimal
	}
	var pairs []pair
	for _, addr := range in.Addresses {
		for _, sym := range in.Symbols {
			asset, ok := a.Assets.Asset(sym)
			if !ok {
				return ReconBatchResult{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("unknown symbol %q", sym))
			}
			bal, err := a.onChainBalance(ctx, asset, addr, block)
			if err != nil {
				return ReconBatchResult{}, err
			}
			pairs = append(pairs, pair{strings.ToLower(addr), asset.Symbol, bal})
		}
	}
	// Balances were read by number: make sure that number still is the
	// pinned block before anything is recorded against its hash.
	h, err := a.Reads.BlockHash(ctx, in.Block.Number)
	if err != nil {
		return ReconBatchResult{}, fmt.Errorf("reading header %d: %w", in.Block.Number, err)
	}
	if !strings.EqualFold(h, in.Block.Hash) {
		return ReconBatchResult{}, permanent(ErrTypePinReorged,
			fmt.Errorf("block %d is now %s, not the pinned %s", in.Block.Number, h, in.Block.Hash))
	}

	log := activity.GetLogger(ctx)
	var res ReconBatchResult
	for _, p := range pairs {
		bal, err := a.Ledger.Balance(ctx, a.Chain, p.addr, p.symbol)
		if err != nil {
			return res, err
		}
		rec := ledger.Reconciliation{RunID: in.RunID, Chain: a.Chain, Address: p.addr, Symbol: p.symbol,
			BlockNumber: in.Block.Number, BlockHash: in.Block.Hash, LedgerTotal: bal.Total(), ChainBalance: p.chainBal,
			Status: ledger.ReconMatched}
		if !p.chainBal.Equal(rec.LedgerTotal) {
			rec.Status = ledger.ReconMismatch
			// Transfer logs tell which token transactions the journal lacks;
			// native value moves leave no log (the mismatch stands alone).
			if tok, isToken := a.Assets.Tokens[p.symbol]; isToken {
				if rec.Unmatched, err = a.unmatchedTransfers(ctx, p.addr, p.symbol, tok, in.LogsFromBlock, in.Block.Number); err != nil {
					return res, err
				}
			}
		}
		err = a.Ledger.RecordReconciliation(ctx, rec)
		if errors.Is(err, ledger.ErrReconConflict) {
			// A previous attempt recorded this pair with the ledger as it was
			// then: that record stands, and is what this run reports.
			if rec, err = a.recordedRecon(ctx, in.RunID, p.addr, p.symbol); err != nil {
				return res, err
			}
		} else if errors.Is(err, ledger.ErrBadRecon) {
			return res, permanent(ErrTypeInvalidRequest, err)
		} else if err != nil {
			return res, err
		}
		res.Checked++
		if rec.Status != ledger.ReconMismatch {
			continue
		}
		diff := rec.ChainBalance.Sub(rec.LedgerTotal)
		log.Warn("reconciliation mismatch", "address", p.addr, "symbol", p.symbol, "difference", diff.String(),
			"ledger_total", rec.LedgerTotal.String(), "chain_balance", rec.ChainBalance.String(),
			"block_number", in.Block.Number, "run_id", in.RunID, "unmatched", len(rec.Unmatched))
		res.Mismatches = append(res.Mismatches, ReconMismatch{Address: p.addr, Symbol: p.symbol,
			LedgerTotal: protocol.NewAmount(rec.LedgerTotal), ChainBalance: protocol.NewAmount(rec.ChainBalance),
			Difference: protocol.NewAmount(diff), Unmatched: len(rec.Unmatched)})
	}
	return res, nil
}

// recordedRecon reads back what the run recorded for (address, symbol).
func (a *Activities) recordedRecon(ctx context.Context, runID, addr, symbol string) (ledger.Reconciliation, error) {
	q := ledger.ReconQuery{Chain: a.Chain, Address: addr, Limit: ledger.MaxPageLimit}
	for {
		page, err := a.Ledger.Reconciliations(ctx, q)
		if err != nil {
			return ledger.Reconciliation{}, err
		}
		for _, r := range page.Reconciliations {
			if r.RunID == runID && r.Symbol == symbol {
				return r, nil
			}
		}
		if page.NextCursor == "" {
			return ledger.Reconciliation{}, fmt.Errorf("reconciliation %s of %s %s reported as conflicting but not found",
				runID, addr, symbol)
		}
		q.Cursor = page.NextCursor
	}
}

// unmatchedTransfers explains a mismatch transaction by transaction: the net
// change each transaction made to the wallet on chain (its Transfer logs up
// to the pinned block) against the net change the journal records under the
// same tx_hash (credits, settlements, reversals). A transaction the journal
// does not account for in full is chain_only, with the signed change the
// journal lacks; one the journal records but no Transfer log up to the pinned
// block shows is ledger_only, with the journal's signed change.
func (a *Activities) unmatchedTransfers(ctx context.Context, addr, symbol string, tok config.Token, from, to uint64) ([]ledger.UnmatchedTransfer, error) {
	type onChain struct {
		net      decimal.Decimal
		logIndex uint // its first log's index in the block
		block    uint64
	}
	chainTx := map[string]*onChain{}
	moves, err := a.Reads.TokenHistory(ctx, tok.Address, addr, from, to)
	if err != nil {
		return nil, fmt.Errorf("reading %s transfers of %s: %w", symbol, addr, err)
	}
	for _, m := range moves {
		v := chain.FromUnits(m.Units, tok.Decimals)
		out, in := strings.EqualFold(m.From, addr), strings.EqualFold(m.To, addr)
		if out {
			v = v.Neg()
		}
		if out && in {
			v = decimal.Zero
		}
		if c, ok := chainTx[m.TxHash]; ok {
			c.net = c.net.Add(v)
			continue
		}
		chainTx[m.TxHash] = &onChain{net: v, logIndex: m.BlockLogIndex, block: m.BlockNumber}
	}

	journalTx := map[string]decimal.Decimal{}
	q := ledger.HistoryQuery{Chain: a.Chain, Address: addr, Symbol: symbol, Limit: ledger.MaxPageLimit}
	for read := 0; read < maxJournalScan; {
		page, err := a.Ledger.History(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, e := range page.Entries {
			if e.TxHash != "" {
				h := strings.ToLower(e.TxHash)
				journalTx[h] = journalTx[h].Add(e.Amount)
			}
		}
		read += len(page.Entries)
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}

	var out []ledger.UnmatchedTransfer
	for h, c := range chainTx {
		// The part of the transaction's change the journal lacks: all of it
		// when the journal has never heard of the transaction.
		if d := c.net.Sub(journalTx[h]); !d.IsZero() {
			out = append(out, ledger.UnmatchedTransfer{Side: ledger.SideChainOnly, TxHash: h, LogIndex: c.logIndex,
				BlockNumber: c.block, Amount: d})
		}
	}
	for h, amt := range journalTx {
		if _, ok := chainTx[h]; ok || amt.IsZero() {
			continue // compared above, or a credit and its reversal
		}
		out = append(out, ledger.UnmatchedTransfer{Side: ledger.SideLedgerOnly, TxHash: h, Amount: amt})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].BlockNumber != out[j].BlockNumber {
			return out[i].BlockNumber < out[j].BlockNumber
		}
		return out[i].TxHash < out[j].TxHash
	})
	if len(out) > maxUnmatched {
		out = out[:maxUnmatched]
	}
	// Name chain-side logs the way the journal does (CreditKey): by their
	// position within the transaction's receipt, not within the block.
	for i := range out {
		if out[i].Side != ledger.SideChainOnly {
			continue
		}
		pos, err := a.Reads.Position(ctx, out[i].TxHash, out[i].LogIndex)
		if err != nil {
			return nil, err
		}
		out[i].LogIndex = pos
	}
	return out, nil
}

// maxCreditChecks bounds the credits one VerifyCredits call re-reads from the
// chain (one receipt each): newer credits beyond it wait for the next run.
const maxCreditChecks = 5000

// Reasons a credit is flagged by VerifyCredits.
const (
	// CreditReversed: the deposit left the chain after it was credited (a
	// reorg deeper than the confirmations); the credit was reversed.
	CreditReversed = "reversed"
	// CreditSpent: as CreditReversed, but the money was already spent, so
	// the reversal was refused (ledger.ErrInsufficientFunds): an operator
	// must recover it.
	CreditSpent = "spent"
	// CreditBackOnChain: a reversed credit's deposit is on chain again. The
	// ledger credits a transfer once, so an operator must book it.
	CreditBackOnChain = "back_on_chain"
)

// CreditCheckInput asks VerifyCredits to re-verify recent deposit credits.
type CreditCheckInput struct {
	// RunID names the reconciliation rows recorded for flagged wallets; with
	// (chain, address, symbol) it is their idempotency key, so it must differ
	// from the run id ReconcileWallets records under.
	RunID string
	// Block is the pinned block: balances of flagged wallets are read there,
	// and a deposit recorded above it is too recent to judge.
	Block PinnedBlock
	// Window: credits posted this recently are re-verified (0 means 24h).
	Window time.Duration
}

// FlaggedCredit is a credit whose deposit is no longer on the chain as it
// was credited (or a reversed one that is back).
type FlaggedCredit struct {
	Address  string
	Symbol   string
	Amount   protocol.Amount
	TxHash   string
	LogIndex uint
	Reason   string // CreditReversed, CreditSpent or CreditBackOnChain
}

// CreditCheckResult sums up VerifyCredits.
type CreditCheckResult struct {
	Checked int
	// Flagged and Mismatches (one per flagged address and symbol) list at
	// most the first 1,000; all are recorded and logged.
	Flagged    []FlaggedCredit
	Mismatches []ReconMismatch
}

// VerifyCredits re-verifies the deposit credits of the last Window against
// the chain: each credited Transfer log must still be in a successful receipt
// on the canonical chain with the same token, recipient and amount. One that
// is gone (a reorg deeper than the confirmations) is reversed in the ledger
// (ledger.Reverse, idempotent), logged at ERROR and recorded as a
// reconciliation mismatch of its wallet, with the credit as a ledger_only
// transfer; it gets no new protocol status. A reversal the balance no longer
// covers (spent already) is flagged CreditSpent, logged and recorded, and does
// not fail the activity. A receipt the node does not have proves nothing by
// itself (the node may lag): the credit is reversed only if the listener
// recorded its deposit at or below the pinned block, in a block that is no
// longer canonical, and the transaction is not waiting in the node's pool to
// be mined again. Safe to repeat.
func (a *Activities) VerifyCredits(ctx context.Context, in CreditCheckInput) (CreditCheckResult, error) {
	window := in.Window
	if window <= 0 {
		window = 24 * time.Hour
	}
	log := activity.GetLogger(ctx)
	type wallet struct{ addr, symbol string }
	var res CreditCheckResult
	flagged := map[wallet][]FlaggedCredit{}
	var order []wallet
	var after int64
	for res.Checked < maxCreditChecks {
		page, err := a.Ledger.RecentCredits(ctx, a.Chain, window, after, min(ledger.MaxPageLimit, maxCreditChecks-res.Checked))
		if err != nil {
			return CreditCheckResult{}, err
		}
		if len(page) == 0 {
			break
		}
		for _, c := range page {
			after = c.JournalID
			res.Checked++
			gone, err := a.creditGone(ctx, c, in.Block)
			if err != nil {
				return CreditCheckResult{}, err
			}
			f := FlaggedCredit{Address: c.Address, Symbol: c.Symbol, Amount: protocol.NewAmount(c.Amount),
				TxHash: c.TxHash, LogIndex: c.LogIndex}
			switch {
			case c.Reversed && !gone:
				f.Reason = CreditBackOnChain
				log.Error("reversed deposit is on chain again; the ledger will not credit it twice: book it by hand",
					"address", c.Address, "symbol", c.Symbol, "amount", c.Amount.String(), "tx_hash", c.TxHash,
					"log_index", c.LogIndex, "run_id", in.RunID)
			case c.Reversed && gone && c.ReversedBy == in.RunID:
				f.Reason = CreditReversed // by an earlier attempt of this run, which may not have recorded it
			case c.Reversed || !gone:
				continue
			default:
				f.Reason = CreditReversed
				_, err := a.Ledger.Reverse(ctx, a.Chain, c.TxHash, c.LogIndex, in.RunID)
				switch {
				case errors.Is(err, ledger.ErrInsufficientFunds):
					f.Reason = CreditSpent
					log.Error("credited deposit reorganised away but already spent; reversal refused: recover it by hand",
						"address", c.Address, "symbol", c.Symbol, "amount", c.Amount.String(), "tx_hash", c.TxHash,
						"log_index", c.LogIndex, "run_id", in.RunID)
				case err != nil:
					return CreditCheckResult{}, err
				default:
					log.Error("credited deposit reorganised away; credit reversed", "address", c.Address,
						"symbol", c.Symbol, "amount", c.Amount.String(), "tx_hash", c.TxHash, "log_index", c.LogIndex,
						"run_id", in.RunID)
				}
			}
			w := wallet{c.Address, c.Symbol}
			if _, ok := flagged[w]; !ok {
				order = append(order, w)
			}
			flagged[w] = append(flagged[w], f)
			res.Flagged = append(res.Flagged, f)
		}
	}
	if res.Checked >= maxCreditChecks {
		log.Warn("more recent credits than one run re-verifies; the newest wait for the next run",
			"checked", res.Checked, "run_id", in.RunID)
	}
	for _, w := range order {
		m, err := a.recordFlagged(ctx, in, w.addr, w.symbol, flagged[w])
		if err != nil {
			return CreditCheckResult{}, err
		}
		res.Mismatches = append(res.Mismatches, m)
	}
	// Every flagged credit is in the recorded rows and the logs; the result
	// stays well inside a Temporal payload.
	if len(res.Flagged) > 10*maxUnmatched {
		res.Flagged = res.Flagged[:10*maxUnmatched]
	}
	if len(res.Mismatches) > 10*maxUnmatched {
		res.Mismatches = res.Mismatches[:10*maxUnmatched]
	}
	return res, nil
}

// creditGone reports whether the credited deposit c is no longer on the
// canonical chain as credited.
func (a *Activities) creditGone(ctx context.Context, c ledger.CreditRecord, pin PinnedBlock) (bool, error) {
	asset, ok := a.Assets.Asset(c.Symbol)
	if !ok {
		return false, nil // nothing to ask; reconciliation reports the symbol
	}
	units, err := chain.ToUnits(c.Amount, asset.Decimals)
	if err != nil {
		return false, nil
	}
	chk, found, err := a.depositOnChain(ctx, DepositRef{TxHash: c.TxHash, LogIndex: c.LogIndex, Token: asset.Address,
		To: c.Address, Units: units.String()})
	if err != nil || chk.Present {
		return false, err
	}
	if found {
		// Mined and reverted: the deposit is not there. Mined and successful
		// but without the credited log: the record does not describe this
		// transaction (a wrong log index, say), which proves nothing about
		// the money: reconciliation's balance check tells, and nothing is
		// reversed on it.
		if !chk.Reverted {
			activity.GetLogger(ctx).Warn("credit does not match its transaction's logs; not reversed", "tx_hash", c.TxHash,
				"log_index", c.LogIndex, "address", c.Address)
		}
		return chk.Reverted, nil
	}
	// No receipt: prove the deposit's block was replaced before believing it.
	bn, bh, recorded, err := ledger.NewDeposits(a.DB).Block(ctx, a.Chain, c.TxHash, c.LogIndex)
	if err != nil || !recorded {
		return false, err
	}
	if bn > pin.Number {
		return false, nil
	}
	h, err := a.Reads.BlockHash(ctx, bn)
	if err != nil {
		return false, fmt.Errorf("reading header %d: %w", bn, err)
	}
	if strings.EqualFold(h, bh) {
		return false, nil // the node has the block but not the receipt: it is inconsistent, not proof
	}
	pending, err := a.Reads.Pending(ctx, c.TxHash)
	if err != nil {
		return false, err
	}
	if pending {
		return false, nil // about to be mined again
	}
	return true, nil
}

// recordFlagged records the flagged credits of one wallet as a mismatch at
// the pinned block: the ledger total as it is now against balanceOf there.
// A repeat keeps the first record, as ReconcileWallets does.
func (a *Activities) recordFlagged(ctx context.Context, in CreditCheckInput, addr, symbol string, fl []FlaggedCredit) (ReconMismatch, error) {
	asset, ok := a.Assets.Asset(symbol)
	if !ok {
		return ReconMismatch{}, permanent(ErrTypeInvalidRequest, fmt.Errorf("unknown symbol %q", symbol))
	}
	onChain, err := a.onChainBalance(ctx, asset, addr, new(big.Int).SetUint64(in.Block.Number))
	if err != nil {
		return ReconMismatch{}, err
	}
	bal, err := a.Ledger.Balance(ctx, a.Chain, addr, symbol)
	if err != nil {
		return ReconMismatch{}, err
	}
	rec := ledger.Reconciliation{RunID: in.RunID, Chain: a.Chain, Address: addr, Symbol: symbol,
		BlockNumber: in.Block.Number, BlockHash: in.Block.Hash, LedgerTotal: bal.Total(),
		ChainBalance: onChain, Status: ledger.ReconMismatch}
	for _, f := range fl {
		amt := f.Amount.Decimal
		side := ledger.SideLedgerOnly // credited, not on chain
		if f.Reason == CreditBackOnChain {
			side = ledger.SideChainOnly // on chain, its credit reversed
		}
		rec.Unmatched = append(rec.Unmatched, ledger.UnmatchedTransfer{Side: side, TxHash: f.TxHash, LogIndex: f.LogIndex,
			Amount: amt})
	}
	err = a.Ledger.RecordReconciliation(ctx, rec)
	if errors.Is(err, ledger.ErrReconConflict) {
		if rec, err = a.recordedRecon(ctx, in.RunID, addr, symbol); err != nil {
			return ReconMismatch{}, err
		}
	} else if errors.Is(err, ledger.ErrBadRecon) {
		return ReconMismatch{}, permanent(ErrTypeInvalidRequest, err)
	} else if err != nil {
		return ReconMismatch{}, err
	}
	return ReconMismatch{Address: addr, Symbol: symbol, LedgerTotal: protocol.NewAmount(rec.LedgerTotal),
		ChainBalance: protocol.NewAmount(rec.ChainBalance), Difference: protocol.NewAmount(rec.ChainBalance.Sub(rec.LedgerTotal)),
		Unmatched: len(rec.Unmatched)}, nil
}
