// Package groupcommit is payflow's one group-commit queue: callers queue
// requests under a key and wait; a writer goroutine per key takes what is
// waiting (up to a batch size), runs one commit function over the batch and
// hands each caller its own outcome. While a batch commits, the next one
// queues up, so batches grow with the load and a lone request waits for
// nobody.
//
// A request's life has two halves, split at the moment a writer takes it
// into a batch:
//   - Before: a caller whose context ends gets the context's error, and its
//     request is never run.
//   - After: the caller waits for its batch's outcome even if its context
//     has ended, so that it never returns while its request may still run
//     (for money, an outcome is known, never half-known). Commit functions
//     bound their own work (a timeout of their own), since no caller's
//     context does.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by Do once Close was called.
var ErrClosed = errors.New("group-commit queue closed")

// Outcome is one request's result, as its caller receives it.
type Outcome[Res any] struct {
	Res Res
	Err error
}

// Config configures a Queue.
type Config[K comparable, Req, Res any] struct {
	// MaxBatch bounds the requests of one batch (at least 1; 1 commits each
	// request alone, through the same commit function).
	MaxBatch int
	// Flights is how many batches of one key may commit at once (0 means
	// 1). With more than one, the commit function must be safe to run
	// concurrently for the same key.
	Flights int
	// Commit commits batch, the requests of key in the order they were
	// queued, and returns each one's outcome, in the same order. It runs on
	// the key's writer goroutine; its outcomes are delivered whether or not
	// the callers still wait. A panic in it is not recovered: the process
	// dies rather than leave its callers with unknown outcomes.
	Commit func(key K, batch []Req) []Outcome[Res]
}

// A request's state: queued until a writer takes it (then it runs) or its
// caller abandons it (then it never does).
const (
	queued int32 = iota
	taken
	abandoned
)

type request[Req, Res any] struct {
	req   Req
	state atomic.Int32
	done  chan Outcome[Res] // buffered: a writer never waits for its caller
}

// Queue is a group-commit queue. Its zero value is not usable; call New.
type Queue[K comparable, Req, Res any] struct {
	cfg     Config[K, Req, Res]
	mu      sync.Mutex
	queues  map[K][]*request[Req, Res]
	writers map[K]int // present: writers run for the key
	closed  bool
	running sync.WaitGroup
}

// New returns a Queue committing with cfg. It panics when cfg.Commit is nil
// or cfg.MaxBatch is below 1 (a wiring error).
func New[K comparable, Req, Res any](cfg Config[K, Req, Res]) *Queue[K, Req, Res] {
	if cfg.Commit == nil || cfg.MaxBatch < 1 {
		panic("groupcommit: Config needs Commit and MaxBatch >= 1")
	}
	if cfg.Flights < 1 {
		cfg.Flights = 1
	}
	return &Queue[K, Req, Res]{cfg: cfg, queues: map[K][]*request[Req, Res]{}, writers: map[K]int{}}
}

// Do queues req under key, starting a writer for key if fewer than Flights
// run, and waits for its outcome. When ctx ends before a writer took req,
// Do returns ctx's error and req never runs; once req was taken, Do returns
// its batch's outcome, however long after ctx ended. After Close, Do
// returns ErrClosed.
func (q *Queue[K, Req, Res]) Do(ctx context.Context, key K, req Req) (Res, error) {
	var zero Res
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	r := &request[Req, Res]{req: req, done: make(chan Outcome[Res], 1)}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return zero, ErrClosed
	}
	q.queues[key] = append(q.queues[key], r)
	start := q.writers[key] < q.cfg.Flights
	if start {
		q.writers[key]++
		q.running.Add(1)
	}
	q.mu.Unlock()
	if start {
		go q.run(key)
	}
	select {
	case o := <-r.done:
		return o.Res, o.Err
	case <-ctx.Done():
		if r.state.CompareAndSwap(queued, abandoned) {
			return zero, ctx.Err()
		}
		o := <-r.done // taken: it runs or ran; its outcome is coming
		return o.Res, o.Err
	}
}

// Queued is how many requests of key wait to be taken (abandoned ones not
// counted). Tests use it to line requests up in one batch.
func (q *Queue[K, Req, Res]) Queued(key K) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, r := range q.queues[key] {
		if r.state.Load() == queued {
			n++
		}
	}
	return n
}

// Close refuses new requests (Do returns ErrClosed) and waits until the
// writers have committed every request queued before it and returned.
func (q *Queue[K, Req, Res]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.running.Wait()
}

// run is one writer of key: it commits batches until the queue is empty.
func (q *Queue[K, Req, Res]) run(key K) {
	defer q.running.Done()
	for {
		batch := q.take(key)
		if batch == nil {
			return
		}
		reqs := make([]Req, len(batch))
		for i, r := range batch {
			reqs[i] = r.req
		}
		outs := q.cfg.Commit(key, reqs)
		if len(outs) != len(batch) {
			panic(fmt.Sprintf("groupcommit: Commit returned %d outcomes for %d requests", len(outs), len(batch)))
		}
		for i, r := range batch {
			r.done <- outs[i]
		}
	}
}

// take takes up to MaxBatch queued requests of key, dropping abandoned
// ones. With none left it returns nil and the writer ends (the next Do
// starts one).
func (q *Queue[K, Req, Res]) take(key K) []*request[Req, Res] {
	q.mu.Lock()
	defer q.mu.Unlock()
	pending := q.queues[key]
	var batch []*request[Req, Res]
	n := 0
	for ; n < len(pending) && len(batch) < q.cfg.MaxBatch; n++ {
		if pending[n].state.CompareAndSwap(queued, taken) {
			batch = append(batch, pending[n])
		}
	}
	if n == len(pending) {
		delete(q.queues, key)
	} else {
		q.queues[key] = pending[n:]
	}
	if len(batch) == 0 {
		if q.writers[key]--; q.writers[key] == 0 {
			delete(q.writers, key)
		}
		return nil
	}
	return batch
}
