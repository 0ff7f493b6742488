// Command payflow-starter consumes the request queues and starts one Temporal
// workflow per request (see package intake). Wiring only.
package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync"
	"time"

	"payflow/intake"
	"payflow/internal/app"
	"payflow/internal/metrics"
	"payflow/protocol"
	"payflow/rmq"
	"payflow/workflows"
)

func main() {
	ctx, cancel, cfg, log := app.Start("payflow-starter")
	if err := cfg.RequireSignKey(); err != nil {
		log.Error("invalid configuration", "err", err)
		os.Exit(2)
	}
	defer cancel()
	m := metrics.New()
	sdkMetrics, err := m.TemporalHandler(log)
	if err != nil {
		log.Error("starter stopped", "err", err)
		os.Exit(1)
	}
	tc, err := app.DialTemporal(ctx, cfg, log, sdkMetrics)
	if err != nil {
		log.Error("starter stopped", "err", err)
		os.Exit(1)
	}
	defer tc.Close()
	pub := rmq.NewPublisher(cfg.RMQ.SubAddr.Reveal(), cfg.RMQ, log)
	defer pub.Close()
	in := intake.New(cfg, tc, pub, log)
	in.Observe = func(flow protocol.Flow, outcome string) { m.Delivery(string(flow), outcome) }
	if cfg.MetricsAddr != "" {
		srv := &http.Server{Addr: cfg.MetricsAddr, Handler: m.Mount(http.NotFoundHandler()), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics endpoint stopped", "addr", cfg.MetricsAddr, "err", err)
			}
		}()
		defer srv.Shutdown(context.WithoutCancel(ctx))
		log.Info("metrics listening", "addr", cfg.MetricsAddr)
	}

	var wg sync.WaitGroup
	consume := func(flow protocol.Flow, queue string, h rmq.Handler) {
		c := &rmq.Consumer{URL: cfg.RMQ.SubAddr.Reveal(), Topology: cfg.RMQ, Queue: queue, Name: string(flow),
			Prefetch: 64, Handler: h, Sender: pub, Log: log,
			Observe: func(outcome string) { m.Delivery(string(flow), outcome) }}
		m.InitDeliveries(string(flow))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Run(ctx)
		}()
	}
	for _, f := range workflows.Flows {
		q := f.Requests(cfg.RMQ).Queue
		consume(f.Flow, q, in.Handler(f.Flow))
		log.Info("consuming", "flow", f.Flow, "queue", q)
	}
	log.Info("starter running")
	<-ctx.Done()
	log.Info("draining")
	wg.Wait()
}
