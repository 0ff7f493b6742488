package metrics

import (
	"fmt"
	"log/slog"

	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// sdkLatencyBuckets are for the SDK's timers, which it records in seconds
// (OpenTelemetry's default buckets assume milliseconds).
var sdkLatencyBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// TemporalHandler returns the Temporal SDK's metrics handler, for
// client.Options.MetricsHandler: the SDK's official OpenTelemetry contrib
// (go.temporal.io/sdk/contrib/opentelemetry) recording into an OpenTelemetry
// Prometheus exporter registered on m's registry. The SDK's metrics are
// then served by /metrics as temporal_* (temporal_request_total,
// temporal_workflow_task_execution_latency_seconds, …). A nil m returns
// client.MetricsNopHandler. Call it once per registry.
func (m *Metrics) TemporalHandler(log *slog.Logger) (client.MetricsHandler, error) {
	if m == nil {
		return client.MetricsNopHandler, nil
	}
	if log == nil {
		log = slog.Default()
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(m.reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("creating the OpenTelemetry Prometheus exporter: %w", err)
	}
	seconds := sdkmetric.NewView(sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: sdkLatencyBuckets}})
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithView(seconds))
	return temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter:                provider.Meter("temporal-sdk-go"),
		UseMonotonicCounters: true, // exported as counters (_total), not gauges
		// The default panics; a metric the meter refuses must not stop a payment.
		OnError: func(err error) { log.Warn("temporal sdk metric not recorded", "err", err) },
	}), nil
}
