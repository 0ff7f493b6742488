package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"payflow/internal/groupcommit"
)

// recorder is a commit function that doubles each request, fails odd ones
// with errOdd, records its batches and, while gated, blocks each batch until
// the test lets it go.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	entered chan int      // receives the first request of each batch, when set
	gate    chan struct{} // when set, each batch waits for it
}

var errOdd = errors.New("odd request")

func (r *recorder) commit(_ string, batch []int) []groupcommit.Outcome[int] {
	if r.entered != nil {
		r.entered <- batch[0]
	}
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(batch))
	r.mu.Unlock()
	outs := make([]groupcommit.Outcome[int], len(batch))
	for i, v := range batch {
		if v%2 == 1 {
			outs[i].Err = fmt.Errorf("committing %d: %w", v, errOdd)
			continue
		}
		outs[i].Res = 2 * v
	}
	return outs
}

func (r *recorder) ran() map[int]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[int]bool{}
	for _, b := range r.batches {
		for _, v := range b {
			if seen[v] {
				panic(fmt.Sprintf("request %d committed twice", v))
			}
			seen[v] = true
		}
	}
	return seen
}

type result struct {
	res int
	err error
}

// goDo runs q.Do in a goroutine; the result arrives on the channel.
func goDo(ctx context.Context, q *groupcommit.Queue[string, int, int], key string, v int) <-chan result {
	out := make(chan result, 1)
	go func() {
		res, err := q.Do(ctx, key, v)
		out <- result{res, err}
	}()
	return out
}

func waitQueued(t *testing.T, q *groupcommit.Queue[string, int, int], key string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for q.Queued(key) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", q.Queued(key), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func get(t *testing.T, c <-chan result) result {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("a request never returned")
		return result{}
	}
}

// holdWriter starts request v on key and returns once its batch is
// committing (blocked on rec's gate).
func holdWriter(t *testing.T, q *groupcommit.Queue[string, int, int], rec *recorder, key string, v int) <-chan result {
	t.Helper()
	c := goDo(context.Background(), q, key, v)
	if got := <-rec.entered; got != v {
		t.Fatalf("batch started with %d, want %d", got, v)
	}
	return c
}

func TestEveryCallerGetsItsOwnOutcome(t *testing.T) {
	rec := &recorder{}
	q := groupcommit.New(groupcommit.Config[string, int, int]{MaxBatch: 16, Commit: rec.commit})
	defer q.Close()
	const n = 2000
	var wg sync.WaitGroup
	var wrong atomic.Int32
	for i := range n {
		wg.Go(func() {
			res, err := q.Do(context.Background(), fmt.Sprint("k", i%3), i)
			if i%2 == 1 && !errors.Is(err, errOdd) || i%2 == 0 && (err != nil || res != 2*i) {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d callers got another's outcome", wrong.Load())
	}
	if got := len(rec.ran()); got != n {
		t.Fatalf("%d requests committed, want %d", got, n)
	}
	for _, b := range rec.batches {
		if len(b) > 16 {
			t.Fatalf("a batch of %d, above MaxBatch", len(b))
		}
	}
}

func TestBatchesKeepOrderAndSizeLimit(t *testing.T) {
	rec := &recorder{entered: make(chan int, 100), gate: make(chan struct{})}
	q := groupcommit.New(groupcommit.Config[string, int, int]{MaxBatch: 4, Commit: rec.commit})
	defer q.Close()
	first := holdWriter(t, q, rec, "k", 100)
	var calls []<-chan result
	for i := range 10 {
		calls = append(calls, goDo(context.Background(), q, "k", 2*i))
		waitQueued(t, q, "k", i+1)
	}
	close(rec.gate)
	get(t, first)
	for i, c := range calls {
		if r := get(t, c); r.err != nil || r.res != 4*i {
			t.Fatalf("request %d: %+v", 2*i, r)
		}
	}
	want := [][]int{{100}, {0, 2, 4, 6}, {8, 10, 12, 14}, {16, 18}}
	if fmt.Sprint(rec.batches) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v", rec.batches, want)
	}
}

func TestMaxBatchOneCommitsEachAlone(t *testing.T) {
	rec := &recorder{}
	q := groupcommit.New(groupcommit.Config[string, int, int]{MaxBatch: 1, Commit: rec.commit})
	defer q.Close()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { _, _ = q.Do(context.Background(), "k", i) })
	}
	wg.Wait()
	for _, b := range rec.batches {
		if len(b) != 1 {
			t.Fatalf("a batch of %d with MaxBatch 1", len(b))
		}
	}
	if len(rec.ran()) != 50 {
		t.Fatal("not every request committed")
	}
}

// A caller that gives up while its request waits gets its context's error
// and the request never runs; the others commit.
func TestCancelledBeforeTakenNeverRuns(t *testing.T) {
	rec := &recorder{entered: make(chan int, 100), gate: make(chan struct{})}
	q := groupcommit.New(groupcommit.Config[string, int, int]{MaxBatch: 8, Commit: rec.commit})
	defer q.Close()
	first := holdWriter(t, q, rec, "k", 100)
	ctx, cancel := context.WithCancel(context.Background())
	gone := goDo(ctx, q, "k", 2)
	waitQueued(t, q, "k", 1)
	stays := goDo(context.Background(), q, "k", 4)
	waitQueued(t, q, "k", 2)
	cancel()
	if r := get(t, gone); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled caller: %+v", r)
	}
	waitQueued(t, q, "k", 1)
	close(rec.gate)
	get(t, first)
	if r := get(t, stays); r.err != nil || r.res != 8 {
		t.Fatalf("remaining caller: %+v", r)
	}
	if ran := rec.ran(); ran[2] || !ran[4] {
		t.Fatalf("committed %v: the abandoned request ran or the other did not", ran)
	}
	if _, err := q.Do(ctx, "k", 6); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do with an ended context: %v", err)
	}
	if rec.ran()[6] {
		t.Fatal("a request whose context had ended ran")
	}
}

// Once taken, a request's outcome is what its caller gets, even when the
// caller's context ended while the batch committed.
func TestCancelledAfterTakenGetsTheOutcome(t *testing.T) {
	rec := &recorder{entered: make(chan int, 100), gate: make(chan struct{})}
	q := groupcommit.New(groupcommit.Config[string, int, int]{MaxBatch: 8, Commit: rec.commit})
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := goDo(ctx, q, "k", 10)
	<-rec.entered
	cancel()
	select {
	case r := <-c:
		t.Fatalf("returned while its request commits: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	close(rec.gate)
	if r := get(t, c); r.err != nil || r.res != 20 {
		t.Fatalf("caller that left after its request was taken: %+v, want its outcome", r)
	}
}

// A commit that fails every request of its batch fails each caller with
// the error; the next batch runs normally.
func TestFailingCommit(t *testing.T) {
	boom := errors.New("connection lost")
	var fail atomic.Bool
	fail.Store(true)
	q := groupcommit.New(groupcommit.Config[string, int, int]{MaxBatch: 8, Commit: func(_ string, b []int) []groupcommit.Outcome[int] {
		outs := make([]groupcommit.Outcome[int], len(b))
		for i, v := range b {
			if fail.Load() {
				outs[i].Err = boom
			} else {
				outs[i].Res = v
			}
		}
		return outs
	}})
	defer q.Close()
	if _, err := q.Do(context.Background(), "k", 1); !errors.Is(err, boom) {
		t.Fatalf("failed commit: %v", err)
	}
	fail.Store(false)
	if res, err := q.Do(context.Background(), "k", 2); err != nil || res != 2 {
		t.Fatalf("after a failed commit: %d %v", res, err)
	}
}

func TestKeysCommitIndependently(t *testing.T) {
	rec := &recorder{entered: make(chan int, 100), gate: make(chan struct{})}
	q := groupcommit.New(groupcommit.Config[string, int, int]{MaxBatch: 8, Commit: rec.commit})
	defer q.Close()
	a := holdWriter(t, q, rec, "a", 100)
	b := holdWriter(t, q, rec, "b", 200) // a's writer is blocked; b's still starts
	close(rec.gate)
	get(t, a)
	get(t, b)
}

func TestFlightsCommitConcurrently(t *testing.T) {
	rec := &recorder{entered: make(chan int, 100), gate: make(chan struct{})}
	q := groupcommit.New(groupcommit.Config[string, int, int]{MaxBatch: 8, Flights: 2, Commit: rec.commit})
	defer q.Close()
	a := holdWriter(t, q, rec, "k", 100)
	b := holdWriter(t, q, rec, "k", 200) // the second flight of the same key
	c := goDo(context.Background(), q, "k", 300)
	waitQueued(t, q, "k", 1) // no third flight
	close(rec.gate)
	for _, ch := range []<-chan result{a, b, c} {
		get(t, ch)
	}
}

// Close commits what was queued before it, joins the writers, and refuses
// what comes after.
func TestCloseDrainsAndJoins(t *testing.T) {
	rec := &recorder{entered: make(chan int, 100), gate: make(chan struct{})}
	q := groupcommit.New(groupcommit.Config[string, int, int]{MaxBatch: 2, Commit: rec.commit})
	first := holdWriter(t, q, rec, "k", 100)
	var calls []<-chan result
	for i := range 5 {
		calls = append(calls, goDo(context.Background(), q, "k", 2*i))
	}
	waitQueued(t, q, "k", 5)
	closed := make(chan struct{})
	go func() {
		q.Close()
		close(closed)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Until Close has begun, the probe queues behind the held writer
		// and gives up (never run).
		probe, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, err := q.Do(probe, "k", 1000)
		cancel()
		if errors.Is(err, groupcommit.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Do after Close was not refused")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a batch was committing")
	case <-time.After(50 * time.Millisecond):
	}
	close(rec.gate)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close never returned")
	}
	// Every queued request had committed by the time Close returned.
	if len(rec.ran()) != 6 {
		t.Fatalf("committed %v, want the 6 queued before Close", rec.ran())
	}
	get(t, first)
	for _, c := range calls {
		if r := get(t, c); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if _, err := q.Do(context.Background(), "other", 2); !errors.Is(err, groupcommit.ErrClosed) {
		t.Fatalf("Do after Close: %v", err)
	}
}

func TestNewRefusesABadConfig(t *testing.T) {
	for name, cfg := range map[string]groupcommit.Config[string, int, int]{
		"no commit":  {MaxBatch: 1},
		"zero batch": {Commit: (&recorder{}).commit},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("New accepted it")
				}
			}()
			groupcommit.New(cfg)
		})
	}
}
