package callcount

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
)

// OpenDB opens a MySQL/MariaDB database whose statements are counted in
// Statements. It behaves as sql.Open("mysql", dsn) otherwise: the driver's
// errors, parameters and transactions pass through unchanged.
func OpenDB(dsn string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing the database DSN: %w", err)
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(connector{c}), nil
}

type connector struct{ driver.Connector }

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{cn}, nil
}

// conn counts the statements of one driver connection. The MySQL driver's
// connection implements every optional interface used here.
type conn struct{ driver.Conn }

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	s, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &stmt{Stmt: s, counter: statement(query)}, nil
}

func (c *conn) Begin() (driver.Tx, error) { //nolint:staticcheck // the driver.Conn interface
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	begins.Inc()
	return txCounter{tx}, nil
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	r, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) { // skipped: database/sql prepares it, counted there
		statement(query).Inc()
	}
	return r, err
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	r, err := c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) {
		statement(query).Inc()
	}
	return r, err
}

func (c *conn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *conn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *conn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

type stmt struct {
	driver.Stmt
	counter prometheus.Counter
}

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) { //nolint:staticcheck // driver.Stmt
	s.counter.Inc()
	return s.Stmt.Exec(args) //nolint:staticcheck
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) { //nolint:staticcheck // driver.Stmt
	s.counter.Inc()
	return s.Stmt.Query(args) //nolint:staticcheck
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.counter.Inc()
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.counter.Inc()
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type txCounter struct{ driver.Tx }

func (t txCounter) Commit() error   { commits.Inc(); return t.Tx.Commit() }
func (t txCounter) Rollback() error { rollbacks.Inc(); return t.Tx.Rollback() }

var (
	begins    = Statements.WithLabelValues("begin", "")
	commits   = Statements.WithLabelValues("commit", "")
	rollbacks = Statements.WithLabelValues("rollback", "")
	// kinds caches each query text's counter: the texts are the code's
	// constants (parameters travel apart), except multi-row inserts that
	// vary with their row count, hence the bound.
	kinds   sync.Map
	kindsN  int
	kindsMu sync.Mutex
)

const maxKinds = 4096

// statement is the counter of a query text.
func statement(query string) prometheus.Counter {
	if c, ok := kinds.Load(query); ok {
		return c.(prometheus.Counter)
	}
	verb, table := Classify(query)
	c := Statements.WithLabelValues(verb, table)
	kindsMu.Lock()
	if kindsN < maxKinds {
		kinds.Store(query, c)
		kindsN++
	}
	kindsMu.Unlock()
	return c
}

// Classify returns a statement's verb (lower case: select, insert, update,
// delete, replace, set, other) and the first table it names after FROM,
// INTO, UPDATE or JOIN (unquoted, lower case; "" when none). A SELECT ...
// FOR UPDATE is "select_for_update".
func Classify(query string) (verb, table string) {
	words := strings.FieldsFunc(query, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '`' || r == '.')
	})
	if len(words) == 0 {
		return "other", ""
	}
	verb = strings.ToLower(words[0])
	switch verb {
	case "select", "insert", "update", "delete", "replace", "set", "with":
	default:
		verb = "other"
	}
	for i, w := range words {
		switch strings.ToLower(w) {
		case "from", "into", "update", "join":
			// FROM (SELECT …): the table is the subquery's.
			if i+1 < len(words) && table == "" && !strings.EqualFold(words[i+1], "select") {
				table = strings.ToLower(strings.Trim(words[i+1], "`"))
				if j := strings.LastIndexByte(table, '.'); j >= 0 {
					table = table[j+1:]
				}
			}
		}
	}
	if verb == "update" && len(words) > 1 {
		table = strings.ToLower(strings.Trim(words[1], "`"))
	}
	if verb == "select" {
		for i := 1; i < len(words); i++ {
			if strings.EqualFold(words[i-1], "for") && strings.EqualFold(words[i], "update") {
				verb = "select_for_update"
			}
		}
	}
	return verb, table
}
