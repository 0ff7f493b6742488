package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const exposition = `# HELP persistence_requests persistence_requests counter
# TYPE persistence_requests counter
persistence_requests{namespace="default",operation="UpdateWorkflowExecution",service_name="history"} 727
persistence_requests{namespace="default",operation="CreateWorkflowExecution",service_name="history"} 109
persistence_requests{namespace="default",operation="CreateTasks",service_name="matching"} 11
persistence_requests{namespace="system",operation="GetTransferTasks",service_name="history"} 432
persistence_requests{namespace="system",operation="GetNamespace",service_name="frontend"} 387
persistence_requests{namespace="system",operation="GetNamespace",service_name="history"} 545
# HELP persistence_latency persistence_latency histogram
# TYPE persistence_latency histogram
persistence_latency_bucket{namespace="default",operation="CreateTasks",le="0.001"} 3
persistence_latency_bucket{namespace="default",operation="CreateTasks",le="+Inf"} 11
persistence_latency_sum{namespace="default",operation="CreateTasks"} 0.02
persistence_latency_count{namespace="default",operation="CreateTasks"} 11
# HELP visibility_persistence_requests visibility_persistence_requests counter
# TYPE visibility_persistence_requests counter
visibility_persistence_requests{operation="RecordWorkflowExecutionStarted",service_name="history",visibility_plugin_name="sqlite"} 100
visibility_persistence_requests{operation="UpsertWorkflowExecution",service_name="history",visibility_plugin_name="sqlite"} 112
`

// TestPersistenceCountsTheDevServersCounters: the bench reads Temporal's own
// persistence_requests (summed over services, by namespace and operation)
// and visibility_persistence_requests, and nothing else (not the latency
// histogram's series).
func TestPersistenceCountsTheDevServersCounters(t *testing.T) {
	snap, err := parsePersistence(strings.NewReader(exposition))
	require.NoError(t, err)
	require.Equal(t, persistenceSnapshot{
		"default/UpdateWorkflowExecution":           727,
		"default/CreateWorkflowExecution":           109,
		"default/CreateTasks":                       11,
		"system/GetTransferTasks":                   432,
		"system/GetNamespace":                       932,
		"visibility/RecordWorkflowExecutionStarted": 100,
		"visibility/UpsertWorkflowExecution":        112,
	}, snap)

	_, err = parsePersistence(strings.NewReader("# TYPE up gauge\nup 1\n"))
	require.Error(t, err, "an endpoint without the counter is not counted as zero requests")
}

// TestPersistenceAcceptsTheOpenTelemetryName: a server exporting through
// OpenTelemetry names the counter persistence_requests_total.
func TestPersistenceAcceptsTheOpenTelemetryName(t *testing.T) {
	snap, err := parsePersistence(strings.NewReader("# TYPE persistence_requests_total counter\n" +
		`persistence_requests_total{namespace="default",operation="CreateTasks"} 4` + "\n"))
	require.NoError(t, err)
	require.Equal(t, persistenceSnapshot{"default/CreateTasks": 4}, snap)
}

// TestPersistencePerPaymentIsTheBatchsDifference: a batch's figure is after
// minus before over its payments, split into the payments' namespace (its
// largest operations first), the server's shard and system work, and
// visibility.
func TestPersistencePerPaymentIsTheBatchsDifference(t *testing.T) {
	before := persistenceSnapshot{"default/UpdateWorkflowExecution": 100, "default/CreateTasks": 10,
		"system/GetNamespace": 50, "visibility/UpsertWorkflowExecution": 5}
	after := persistenceSnapshot{"default/UpdateWorkflowExecution": 500, "default/CreateTasks": 110,
		"default/CreateWorkflowExecution": 100, "system/GetNamespace": 70, "visibility/UpsertWorkflowExecution": 205}
	d := diffPersistence(before, after)
	require.Equal(t, 820.0, d.total())
	require.Equal(t, 8.2, d.perPayment(100))
	require.Equal(t, "8.2 per payment", d.measured(100))
	require.Equal(t, "namespace default 6.0 (UpdateWorkflowExecution 4.0, CreateTasks 1.0, CreateWorkflowExecution 1.0); "+
		"shard and system 0.2 (GetNamespace 0.2); visibility 2.0", d.split("default", 100))

	failed := persistenceDelta{Err: "scraping Temporal's metrics: connection refused"}
	require.Equal(t, "not measured", failed.measured(100))
	require.Equal(t, 0.0, failed.perPayment(100))
}

// TestPersistenceParsesALiveScrape (only with PAYFLOW_BENCH_TEMPORAL_METRICS
// naming a saved scrape of the dev server): the real exposition parses.
func TestPersistenceParsesALiveScrape(t *testing.T) {
	p := os.Getenv("PAYFLOW_BENCH_TEMPORAL_METRICS")
	if p == "" {
		t.Skip("PAYFLOW_BENCH_TEMPORAL_METRICS not set")
	}
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	snap, err := parsePersistence(f)
	require.NoError(t, err)
	require.NotZero(t, snap["default/UpdateWorkflowExecution"])
	t.Logf("%d series", len(snap))
}
