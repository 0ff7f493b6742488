package metrics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"payflow/config"
)

// Node is what the Sampler asks the chain node: its head, and when a block
// was made.
type Node interface {
	BlockNumber(ctx context.Context) (uint64, error)
	BlockTime(ctx context.Context, number uint64) (time.Time, error)
}

// Balances reads wallet balances on chain (chain.Balances is one): of token
// ("" is the native coin), block nil the latest.
type Balances interface {
	Balance(ctx context.Context, token, owner string, block *big.Int) (*big.Int, error)
}

// Outbox counts the answers recorded and not published yet
// (*answers.Outbox is one).
type Outbox interface {
	Unpublished(ctx context.Context) (int64, error)
}

// NativeSymbol is the symbol label of a wallet's native coin balance (ETH,
// BNB, ...) in payflow_wallet_balance, on every chain: the alert rules name
// it without knowing each chain's coin.
const NativeSymbol = "native"

// Wallet kinds of payflow_nonce_lane_backlog (wallet_kind) and
// payflow_wallet_balance (kind), as in the wallets table.
var (
	laneKinds    = []string{"hot", "collection", "gas", "deposit"}
	balanceKinds = []string{"hot", "collection", "gas", "cold"}
	// tierKinds are the kinds of the hot tier: the wallets that pay.
	tierKinds = []string{"hot", "collection"}
)

// SamplerChain is one chain the Sampler reads.
type SamplerChain struct {
	Name     string             // "ETH", "BSC": the chain label, and chain in the ledger's tables
	Assets   config.ChainConfig // its tokens (Assets.Tokens) and native coin
	Node     Node
	Balances Balances // nil: no wallet balances for this chain
}

// ChainStore reads the chains' stored and tracked transactions and the
// listener's cursor (the EVM family's evm.Stats is one).
type ChainStore interface {
	// InFlight counts a chain's transfers in flight, the oldest's age, and
	// the payments among them (step paymentStep) in flight for longer than
	// stuckAfter.
	InFlight(ctx context.Context, chain, paymentStep string, stuckAfter time.Duration) (n int64, oldest time.Duration, stuck int64, err error)
	// LaneBacklog counts the nonces signed and not mined per sending address.
	LaneBacklog(ctx context.Context, chain string) (map[string]int64, error)
	// CursorBlock is the listener's cursor; ok is false when it never ran.
	CursorBlock(ctx context.Context, chain string) (block uint64, ok bool, err error)
}

// The Sampler reads the tables other packages own through their APIs, never
// by SQL of its own: each reading is a func the worker wires to the owner
// (metrics imports neither the ledger nor activities, which import it).

// WalletsFunc lists chain's wallets of the given kinds: lowercase address →
// kind ("hot", "collection", "gas", "deposit"). The ledger owns wallets.
type WalletsFunc func(ctx context.Context, chain string, kinds []string) (map[string]string, error)

// WalletKindsFunc returns the kind of each of addresses that is a wallet of
// chain, keyed by the lowercase address; others are left out.
type WalletKindsFunc func(ctx context.Context, chain string, addresses []string) (map[string]string, error)

// MismatchesFunc counts chain's reconciliation mismatches: of its latest run,
// and of all runs (a count that only grows). The ledger owns reconciliations.
type MismatchesFunc func(ctx context.Context, chain string) (latest, total int64, err error)

// FailingFunc counts chain's workflow steps failing on a retried error now.
// Activities own failing_steps.
type FailingFunc func(ctx context.Context, chain string) (int64, error)

// SamplerConfig says what the Sampler reads. A reading func left nil fails
// its part on every sample (logged), so a forgotten wiring shows.
type SamplerConfig struct {
	Chains []SamplerChain
	// Wallets, WalletKinds: the ledger's wallets (balances by kind, the
	// nonce lane backlog by the sender's kind).
	Wallets     WalletsFunc
	WalletKinds WalletKindsFunc
	// Mismatches: the ledger's reconciliation results.
	Mismatches MismatchesFunc
	// Failing: the steps failing now.
	Failing FailingFunc
	// PaymentStep is the signed_txs step of a payment's transfer (the
	// payments among the transfers in flight).
	PaymentStep string
	// ConfirmTimeout: a payment whose transfer is unconfirmed for longer is
	// stuck (payment.confirm_timeout).
	ConfirmTimeout time.Duration
	// Interval between samples; default 10s.
	Interval time.Duration
	// Timeout bounds each part of a sample (one query, or the node's
	// answers); default 8s.
	Timeout time.Duration
	// Outbox is read for payflow_outbox_backlog; nil: not sampled.
	Outbox Outbox
	// ChainStore is read for the transfers in flight, the nonce lanes'
	// backlog and the listener's lag.
	ChainStore ChainStore
}

// Sampler is the worker's gauges for every chain it serves: it reads
// MariaDB and each chain's node every Interval (Run) and serves the latest
// readings at scrape time, so a scrape never waits on the database or a
// node. It is one prometheus.Collector for all chains (every per-chain
// series carries chain=<name>): register it once with Metrics.Register.
//
// Each chain is sampled on its own (Run: one loop per chain, plus one for
// what is not per chain), so a slow or stopped node delays only its own
// chain's readings. A part that fails to read keeps its previous readings
// (and is logged), the others are updated; payflow_node_up says whether a
// chain's node answered the latest sample, as its listener and balance
// readings may be old.
type Sampler struct {
	cfg    SamplerConfig
	chains []SamplerChain
	db     *sql.DB
	log    *slog.Logger

	inFlight, oldestAge, stuck, failing            *prometheus.Desc
	headBlock, lagBlocks, lagSeconds, nodeUp       *prometheus.Desc
	nonceBacklog, outboxBacklog                    *prometheus.Desc
	reconMismatches, reconMismatchesTotal, balance *prometheus.Desc
	hotBalance, hotCeiling, hotFloor, coldBalance  *prometheus.Desc

	mu    sync.Mutex
	parts map[partKey][]prometheus.Metric // latest readings
}

// partKey names the readings of one part: chain "" is what is not per chain
// (the outbox).
type partKey struct{ chain, part string }

// part is one read of a sample.
type part struct {
	name string
	read func(context.Context) ([]prometheus.Metric, error)
}

// NewSampler returns a Sampler over db and cfg.Chains' nodes and balances.
// A chain named twice is sampled once.
func NewSampler(cfg SamplerConfig, db *sql.DB, log *slog.Logger) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 8 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	var chains []SamplerChain
	named := map[string]bool{}
	for _, c := range cfg.Chains {
		if named[c.Name] {
			log.Warn("metrics: chain listed twice; sampling it once", "chain", c.Name)
			continue
		}
		named[c.Name] = true
		chains = append(chains, c)
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Sampler{cfg: cfg, chains: chains, db: db, log: log, parts: map[partKey][]prometheus.Metric{},
		inFlight: d("payflow_transfers_in_flight",
			"Transfers payflow signed and tracks that are not confirmed yet (a transfer's replacements count once).", "chain"),
		oldestAge: d("payflow_transfer_oldest_age_seconds",
			"Age of the oldest transfer in flight (0 when none).", "chain"),
		stuck: d("payflow_stuck_payments",
			"Payments whose transfer is unconfirmed for longer than payment.confirm_timeout.", "chain"),
		failing: d("payflow_failing_steps",
			"Workflow steps failing on an error that is retried (a node or database that does not answer), recorded within the last 2 minutes; payflowctl payment show gives the error.",
			"chain"),
		headBlock: d("payflow_listener_head_block", "The chain's latest block, as the node reports it.", "chain"),
		lagBlocks: d("payflow_listener_lag_blocks",
			"Blocks between the chain's head and the last block the deposit listener processed.", "chain"),
		lagSeconds: d("payflow_listener_lag_seconds",
			"Age of the oldest block the deposit listener has not processed (0 when it is at the head).", "chain"),
		nodeUp: d("payflow_node_up",
			"1 when the chain's node answered the latest metrics sample, 0 when not (its head, lag and balance readings are then the last ones read).",
			"chain"),
		nonceBacklog: d("payflow_nonce_lane_backlog",
			"Signed transactions not mined yet (one per nonce), summed over the sending wallets of a kind.", "chain", "wallet_kind"),
		outboxBacklog: d("payflow_outbox_backlog", "Answers and notices stored in the outbox and not published yet (all chains)."),
		reconMismatches: d("payflow_reconciliation_mismatches",
			"Wallet/symbol pairs found mismatched by the latest reconciliation run.", "chain"),
		reconMismatchesTotal: d("payflow_reconciliation_mismatches_total",
			"Mismatches ever recorded by reconciliation runs (from the reconciliations table).", "chain"),
		balance: d("payflow_wallet_balance",
			"On-chain balance of the hot, collection, gas and cold wallets, summed by kind, in token units (symbol=native: the chain's native coin, e.g. ETH or BNB; gas wallets report only it).",
			"chain", "kind", "symbol"),
		hotBalance: d("payflow_treasury_hot_balance",
			"On-chain balance of the hot tier (the hot and collection wallets, the wallets that pay), in the asset's units (symbol=native: the chain's native coin).",
			"chain", "symbol"),
		hotCeiling: d("payflow_treasury_hot_ceiling",
			"The asset's hot_ceiling: the hot tier's excess above it is swept to the cold address. No series without one.",
			"chain", "symbol"),
		hotFloor: d("payflow_treasury_hot_floor",
			"The asset's hot_floor: a hot tier below it asks for a refill from cold (PayflowHotWalletBelowFloor). No series without one.",
			"chain", "symbol"),
		coldBalance: d("payflow_treasury_cold_balance",
			"On-chain balance of the chain's cold wallets (watch-only), in the asset's units (symbol=native: the chain's native coin).",
			"chain", "symbol"),
	}
}

// Describe implements prometheus.Collector.
func (s *Sampler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.inFlight, s.oldestAge, s.stuck, s.failing, s.headBlock, s.lagBlocks, s.lagSeconds,
		s.nodeUp, s.nonceBacklog, s.outboxBacklog, s.reconMismatches, s.reconMismatchesTotal, s.balance,
		s.hotBalance, s.hotCeiling, s.hotFloor, s.coldBalance} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the latest readings.
func (s *Sampler) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ms := range s.parts {
		for _, m := range ms {
			ch <- m
		}
	}
}

// Run samples at once and then every Interval until ctx ends: each chain in
// its own loop, so one chain's slow node never holds back another's
// readings. A failing part is logged when its error changes, not on every
// sample.
func (s *Sampler) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.loop(ctx, "", s.sharedParts) })
	for _, c := range s.chains {
		wg.Go(func() { s.loop(ctx, c.Name, func() []part { return s.chainParts(c) }) })
	}
	wg.Wait()
}

// loop samples chain's parts (built afresh for each sample) every Interval.
func (s *Sampler) loop(ctx context.Context, chain string, parts func() []part) {
	log := s.log
	if chain != "" {
		log = log.With("chain", chain)
	}
	last := ""
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		err := s.sample(ctx, chain, parts())
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && err.Error() != last:
			log.Warn("metrics sample incomplete; keeping the previous readings of what failed", "err", err)
			last = err.Error()
		case err == nil && last != "":
			log.Info("metrics sample complete again")
			last = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample reads every part of every chain once, the chains in parallel, and
// replaces the readings of the parts that succeeded. It returns the
// failures joined, each named by chain and part.
func (s *Sampler) Sample(ctx context.Context) error {
	errs := make([]error, len(s.chains)+1)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = s.sample(ctx, "", s.sharedParts()) })
	for i, c := range s.chains {
		wg.Go(func() { errs[i+1] = s.sample(ctx, c.Name, s.chainParts(c)) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sample reads parts one after the other, each within Timeout, and keeps
// the readings of those that succeeded under chain. Each failure is named
// "<chain>: <part>: ...".
func (s *Sampler) sample(ctx context.Context, chain string, parts []part) error {
	var errs []error
	for _, p := range parts {
		pctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		ms, err := p.read(pctx)
		cancel()
		if err != nil {
			if chain != "" {
				err = fmt.Errorf("%s: %s: %w", chain, p.name, err)
			} else {
				err = fmt.Errorf("%s: %w", p.name, err)
			}
			errs = append(errs, err)
			continue
		}
		s.mu.Lock()
		s.parts[partKey{chain, p.name}] = ms
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// sharedParts are the reads that are not per chain.
func (s *Sampler) sharedParts() []part {
	if s.cfg.Outbox == nil {
		return nil
	}
	return []part{{"outbox", s.outbox}}
}

// chainParts are c's reads for one sample: the database's first, then the
// node's. The node is asked for its head once ("node": payflow_node_up);
// when it does not answer, the listener and balance parts are skipped (and
// keep their previous readings) rather than each waiting up to Timeout.
func (s *Sampler) chainParts(c SamplerChain) []part {
	var head uint64
	var headErr error
	return []part{
		{"transfers", func(ctx context.Context) ([]prometheus.Metric, error) { return s.transfers(ctx, c.Name) }},
		{"lanes", func(ctx context.Context) ([]prometheus.Metric, error) { return s.lanes(ctx, c.Name) }},
		{"reconciliation", func(ctx context.Context) ([]prometheus.Metric, error) { return s.reconciliation(ctx, c.Name) }},
		{"treasury", func(context.Context) ([]prometheus.Metric, error) { return s.tierBounds(c), nil }},
		{"node", func(ctx context.Context) ([]prometheus.Metric, error) {
			head, headErr = c.Node.BlockNumber(ctx)
			up := 1.0
			if headErr != nil {
				up = 0
			}
			return []prometheus.Metric{gauge(s.nodeUp, up, c.Name)}, nil
		}},
		{"listener", func(ctx context.Context) ([]prometheus.Metric, error) {
			if headErr != nil {
				return nil, fmt.Errorf("reading the head: %w", headErr)
			}
			return s.listener(ctx, c, head)
		}},
		{"balances", func(ctx context.Context) ([]prometheus.Metric, error) {
			if headErr != nil {
				return nil, errors.New("skipped: the node did not answer")
			}
			return s.balances(ctx, c)
		}},
	}
}

// errNotWired is the error of a part whose reading func SamplerConfig lacks.
func errNotWired(field string) error {
	return fmt.Errorf("SamplerConfig.%s is not set", field)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// transfers: in flight, the oldest's age, and stuck payments. A transfer is
// in flight while one of its attempts is tracked and not confirmed.
func (s *Sampler) transfers(ctx context.Context, chain string) ([]prometheus.Metric, error) {
	if s.cfg.Failing == nil {
		return nil, errNotWired("Failing")
	}
	if s.cfg.ChainStore == nil {
		return nil, errNotWired("ChainStore")
	}
	n, oldest, stuck, err := s.cfg.ChainStore.InFlight(ctx, chain, s.cfg.PaymentStep, s.cfg.ConfirmTimeout)
	if err != nil {
		return nil, err
	}
	failing, err := s.cfg.Failing(ctx, chain)
	if err != nil {
		return nil, err
	}
	return []prometheus.Metric{
		gauge(s.inFlight, float64(n), chain),
		gauge(s.oldestAge, oldest.Seconds(), chain),
		gauge(s.stuck, float64(stuck), chain),
		gauge(s.failing, float64(failing), chain),
	}, nil
}

// lanes: per wallet kind, the nonces signed and not mined: tracked and not
// seen in a block by any attempt, or signed and never broadcast (no attempt
// on the nonce is tracked). Senders that are not payflow's wallets are not
// counted.
func (s *Sampler) lanes(ctx context.Context, chain string) ([]prometheus.Metric, error) {
	if s.cfg.WalletKinds == nil {
		return nil, errNotWired("WalletKinds")
	}
	if s.cfg.ChainStore == nil {
		return nil, errNotWired("ChainStore")
	}
	backlog, err := s.cfg.ChainStore.LaneBacklog(ctx, chain)
	if err != nil {
		return nil, err
	}
	bySender := map[string]int64{}
	for from, n := range backlog {
		bySender[strings.ToLower(from)] += n
	}
	senders := make([]string, 0, len(bySender))
	for from := range bySender {
		senders = append(senders, from)
	}
	kinds, err := s.cfg.WalletKinds(ctx, chain, senders)
	if err != nil {
		return nil, err
	}
	byKind := map[string]int64{}
	for from, n := range bySender {
		if kind, ok := kinds[from]; ok {
			byKind[kind] += n
		}
	}
	var ms []prometheus.Metric
	for _, k := range laneKinds {
		ms = append(ms, gauge(s.nonceBacklog, float64(byKind[k]), chain, k))
	}
	return ms, nil
}

func (s *Sampler) outbox(ctx context.Context) ([]prometheus.Metric, error) {
	n, err := s.cfg.Outbox.Unpublished(ctx)
	if err != nil {
		return nil, err
	}
	return []prometheus.Metric{gauge(s.outboxBacklog, float64(n))}, nil
}

// listener: the node's head (read by the "node" part), and how far behind
// it the listener's cursor is. Without a cursor (the listener never ran)
// only the head is reported.
func (s *Sampler) listener(ctx context.Context, c SamplerChain, head uint64) ([]prometheus.Metric, error) {
	ms := []prometheus.Metric{gauge(s.headBlock, float64(head), c.Name)}
	if s.cfg.ChainStore == nil {
		return nil, errNotWired("ChainStore")
	}
	cursor, ok, err := s.cfg.ChainStore.CursorBlock(ctx, c.Name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return ms, nil
	}
	var blocks, secs float64
	if head > cursor {
		blocks = float64(head - cursor)
		made, err := c.Node.BlockTime(ctx, cursor+1)
		if err != nil {
			return nil, fmt.Errorf("reading header %d: %w", cursor+1, err)
		}
		secs = max(time.Since(made).Seconds(), 0)
	}
	return append(ms, gauge(s.lagBlocks, blocks, c.Name), gauge(s.lagSeconds, secs, c.Name)), nil
}

// reconciliation: mismatches of the latest run, and of all runs (a counter:
// recorded rows are never deleted, and a run records a pair once).
func (s *Sampler) reconciliation(ctx context.Context, chain string) ([]prometheus.Metric, error) {
	if s.cfg.Mismatches == nil {
		return nil, errNotWired("Mismatches")
	}
	latest, total, err := s.cfg.Mismatches(ctx, chain)
	if err != nil {
		return nil, err
	}
	return []prometheus.Metric{
		gauge(s.reconMismatches, float64(latest), chain),
		prometheus.MustNewConstMetric(s.reconMismatchesTotal, prometheus.CounterValue, float64(total), chain),
	}, nil
}

// balances: what c's hot, collection and gas wallets hold on chain, per
// kind and symbol (NativeSymbol: the chain's native coin, whatever its
// symbol, so one alert rule covers every chain; the tokens by their
// symbols). Gas wallets report only their
// native balance. A kind without wallets has no series.
func (s *Sampler) balances(ctx context.Context, c SamplerChain) ([]prometheus.Metric, error) {
	if c.Balances == nil {
		return nil, nil
	}
	if s.cfg.Wallets == nil {
		return nil, errNotWired("Wallets")
	}
	byAddress, err := s.cfg.Wallets(ctx, c.Name, balanceKinds)
	if err != nil {
		return nil, err
	}
	type wallet struct{ address, kind string }
	wallets := make([]wallet, 0, len(byAddress))
	for a, kind := range byAddress {
		wallets = append(wallets, wallet{a, kind})
	}
	sort.Slice(wallets, func(i, j int) bool { return wallets[i].address < wallets[j].address })
	tokens := c.Assets.Tokens
	symbols := make([]string, 0, len(tokens))
	for sym := range tokens {
		symbols = append(symbols, sym)
	}
	sort.Strings(symbols)
	sums := map[[2]string]decimal.Decimal{}
	for _, w := range wallets {
		owner := w.address
		wei, err := c.Balances.Balance(ctx, "", owner, nil)
		if err != nil {
			return nil, fmt.Errorf("reading the native balance of a %s wallet: %w", w.kind, err)
		}
		k := [2]string{w.kind, NativeSymbol}
		sums[k] = sums[k].Add(decimal.NewFromBigInt(wei, -config.NativeDecimals))
		for _, sym := range symbols {
			if w.kind == "gas" {
				break
			}
			tok := tokens[sym]
			units, err := c.Balances.Balance(ctx, tok.Address, owner, nil)
			if err != nil {
				return nil, fmt.Errorf("reading the %s balance of a %s wallet: %w", sym, w.kind, err)
			}
			k := [2]string{w.kind, sym}
			sums[k] = sums[k].Add(decimal.NewFromBigInt(units, -tok.Decimals))
		}
	}
	held := map[string]bool{}
	for _, w := range wallets {
		held[w.kind] = true
	}
	var ms []prometheus.Metric
	for _, kind := range balanceKinds {
		if !held[kind] {
			continue // no wallet of the kind: no series (not a zero balance to alert on)
		}
		syms := append([]string{NativeSymbol}, symbols...)
		if kind == "gas" {
			syms = syms[:1] // it holds gas for others; its tokens are nobody's concern
		}
		for _, sym := range syms {
			ms = append(ms, gauge(s.balance, sums[[2]string{kind, sym}].InexactFloat64(), c.Name, kind, sym))
		}
	}
	// The tiers: the hot tier's sum over its kinds, the cold wallets'.
	syms := append([]string{NativeSymbol}, symbols...)
	if held[tierKinds[0]] || held[tierKinds[1]] {
		for _, sym := range syms {
			var v decimal.Decimal
			for _, kind := range tierKinds {
				v = v.Add(sums[[2]string{kind, sym}])
			}
			ms = append(ms, gauge(s.hotBalance, v.InexactFloat64(), c.Name, sym))
		}
	}
	if held["cold"] {
		for _, sym := range syms {
			ms = append(ms, gauge(s.coldBalance, sums[[2]string{"cold", sym}].InexactFloat64(), c.Name, sym))
		}
	}
	return ms, nil
}

// tierBounds: each asset's hot_ceiling and hot_floor from c's configuration
// (symbol NativeSymbol for the native coin, as the balances); an asset
// without one has no series.
func (s *Sampler) tierBounds(c SamplerChain) []prometheus.Metric {
	var ms []prometheus.Metric
	for _, sym := range c.Assets.Symbols() {
		a, _ := c.Assets.Asset(sym)
		label := sym
		if a.Native {
			label = NativeSymbol
		}
		if v, ok := a.Ceiling(); ok {
			ms = append(ms, gauge(s.hotCeiling, v.InexactFloat64(), c.Name, label))
		}
		if v, ok := a.Floor(); ok {
			ms = append(ms, gauge(s.hotFloor, v.InexactFloat64(), c.Name, label))
		}
	}
	return ms
}

// Register adds c (a Sampler) to m's registry.
func (m *Metrics) Register(c prometheus.Collector) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(c)
}
