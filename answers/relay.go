package answers

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"payflow/protocol"
)

// Defaults of RelayConfig.
const (
	DefaultRelayGrace    = 30 * time.Second
	DefaultRelayInterval = 10 * time.Second
	defaultRelayBatch    = 100
)

// RelayConfig says which answers the Relay publishes, and how often it looks.
type RelayConfig struct {
	// Grace is how long an answer stays unpublished before the Relay
	// publishes it: the time its own workflow has to do so. Default 30s.
	Grace time.Duration
	// Interval between looks; default 10s.
	Interval time.Duration
	// Batch bounds the answers published per look; default 100 (a look that
	// publishes a full batch is followed by another at once).
	Batch int
}

// RelayMetrics counts what the Relay publishes (*metrics.Metrics is one).
type RelayMetrics interface {
	AnswerRelayed(flow protocol.Flow)
}

// Relay publishes answers that were recorded and stayed unpublished past
// the grace period: above all the answer of a run that was terminated (or
// whose worker died and was never resumed) between recording its answer and
// publishing it, which nothing else would ever send.
//
// It does not ask Temporal whether the answer's run still lives: an answer
// whose own run publishes it at the same moment is still sent once, because
// both go through Outbox.Publish, which holds the answer's row lock across
// the send and the mark (the Relay skips a row another publisher holds, and
// leaves a row it finds published). So the grace period is not what keeps
// an answer single; it leaves the normal path, the run's own PublishResult,
// to publish nearly every answer, and the Relay to what stays behind. For
// the same reason one Relay per worker process is safe: two Relays take
// turns on each row.
type Relay struct {
	o   *Outbox
	cfg RelayConfig
	m   RelayMetrics
	log *slog.Logger
}

// NewRelay returns a Relay publishing through o; m may be nil.
func NewRelay(o *Outbox, cfg RelayConfig, m RelayMetrics, log *slog.Logger) *Relay {
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultRelayGrace
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRelayInterval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = defaultRelayBatch
	}
	if log == nil {
		log = slog.Default()
	}
	return &Relay{o: o, cfg: cfg, m: m, log: log}
}

// Run relays every Interval until ctx ends. A failed look (the database or
// the broker down) is logged and tried again at the next.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		for {
			n, err := r.RelayOnce(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.Error("relaying unpublished answers", "err", err)
			}
			if err != nil || n < r.cfg.Batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RelayOnce publishes up to Batch answers recorded at least Grace ago and
// still unpublished, oldest first, each once, and returns how many it
// published. It stops at the first answer it fails to publish (the broker
// or the database is likely down for the rest too); an answer whose flow
// has no response queue is logged and skipped.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	stale, err := r.o.stale(ctx, r.cfg.Grace, r.cfg.Batch)
	if err != nil {
		return 0, err
	}
	relayed := 0
	for _, a := range stale {
		first, busy, err := r.o.publish(ctx, a.Flow, a.MessageID, true)
		switch {
		case errors.Is(err, ErrUnknownFlow):
			r.log.Error("cannot relay an answer", "message_id", a.MessageID, "flow", a.Flow, "err", err)
			continue
		case err != nil:
			return relayed, err
		case busy || !first:
			continue // another publisher has it, or had it
		}
		relayed++
		if r.m != nil {
			r.m.AnswerRelayed(a.Flow)
		}
		r.log.Info("answer relayed: recorded and unpublished past the grace period", "message_id", a.MessageID,
			"flow", a.Flow, "grace", r.cfg.Grace.String())
	}
	return relayed, nil
}
