package holds

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the deposits still frozen (held, or being returned),
// by chain and symbol, read from the store at each scrape:
// payflow_risk_held_deposits and payflow_risk_held_amount.
type Collector struct {
	store  *Store
	count  *prometheus.Desc
	amount *prometheus.Desc
}

// NewCollector returns the collector of store's holds.
func NewCollector(store *Store) *Collector {
	return &Collector{store: store,
		count: prometheus.NewDesc("payflow_risk_held_deposits",
			"Deposits from a sender on the deny list still frozen (held, or being returned to the sender), by chain and symbol.",
			[]string{"chain", "symbol"}, nil),
		amount: prometheus.NewDesc("payflow_risk_held_amount",
			"Their amount, in the symbol's units, by chain and symbol.", []string{"chain", "symbol"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.amount
}

// Collect implements prometheus.Collector. A database that does not answer
// within 5 s gives no series this scrape (the scrape itself still succeeds).
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	totals, err := c.store.Totals(ctx)
	if err != nil {
		return
	}
	for _, t := range totals {
		amt, _ := t.Amount.Float64()
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(t.Count), t.Chain, t.Symbol)
		ch <- prometheus.MustNewConstMetric(c.amount, prometheus.GaugeValue, amt, t.Chain, t.Symbol)
	}
}
