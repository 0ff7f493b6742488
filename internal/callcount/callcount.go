// Package callcount counts what a payflow process asks of its database and
// its chain nodes: SQL statements by verb and first table, and JSON-RPC calls
// by method. The counts are process-wide (one database and a node per chain
// per process) and served on the process's /metrics, so `make bench` can
// print them per payment beside Temporal's own requests.
package callcount

import "github.com/prometheus/client_golang/prometheus"

var (
	// Statements counts SQL statements sent to the database, by verb
	// (select, insert, update, delete, begin, commit, rollback, other) and
	// the first table the statement names ("" when none).
	Statements = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_db_statements_total",
		Help: "SQL statements this process sent to the database, by verb and first table named."},
		[]string{"verb", "table"})
	// NodeCalls counts JSON-RPC calls to the chain nodes over HTTP, by
	// method; a batch counts each of its calls.
	NodeCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_node_calls_total",
		Help: "JSON-RPC calls this process sent to its chain nodes over HTTP, by method (each call of a batch counted)."},
		[]string{"method"})
	// NodeRequests counts HTTP requests to the chain nodes: a batch of calls
	// is one.
	NodeRequests = prometheus.NewCounter(prometheus.CounterOpts{Name: "payflow_node_requests_total",
		Help: "HTTP requests this process sent to its chain nodes (a JSON-RPC batch is one)."})
)

// Collectors are the counters, for a process's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{Statements, NodeCalls, NodeRequests}
}
