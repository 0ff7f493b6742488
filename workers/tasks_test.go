package main

import (
	"context"
	"errors"
	"testing"
	"time"
)

// blockingTask runs until ctx ends, reports that, then returns only when
// released: it stands for a tracker or healer still finishing a DB call.
type blockingTask struct {
	cancelled chan struct{}
	release   chan struct{}
}

func newBlockingTask() *blockingTask {
	return &blockingTask{cancelled: make(chan struct{}), release: make(chan struct{})}
}

func (b *blockingTask) run(ctx context.Context) error {
	<-ctx.Done()
	close(b.cancelled)
	<-b.release
	return nil
}

func waitFor(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
}

// TestRunTogetherJoinsEveryTask: the worker used to start the tracker and the
// gap healer with a bare `go` inside the leased function and the lease itself
// with a bare `go` in main, so at shutdown db.Close ran while they still used
// the database (and a lost-then-retaken lease could run two trackers).
// runTogether returns only after every task has returned.
func TestRunTogetherJoinsEveryTask(t *testing.T) {
	tracker, healer := newBlockingTask(), newBlockingTask()
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		_ = runTogether(ctx, tracker.run, healer.run)
	}()
	cancel()
	waitFor(t, "tracker cancelled", tracker.cancelled)
	waitFor(t, "healer cancelled", healer.cancelled)
	close(tracker.release)
	select {
	case <-returned:
		t.Fatal("runTogether returned while the healer was still running")
	default:
	}
	close(healer.release)
	waitFor(t, "runTogether returning", returned)
}

// TestRunTogetherStopsTheRestWhenOneReturns: when the listener fails, the
// tracker and healer are cancelled and joined, and the listener's error is
// returned (RunWithLease logs it and starts them all again).
func TestRunTogetherStopsTheRestWhenOneReturns(t *testing.T) {
	tracker, healer := newBlockingTask(), newBlockingTask()
	close(tracker.release)
	close(healer.release)
	errListener := errors.New("listener failed")
	listener := func(context.Context) error { return errListener }
	done := make(chan error, 1)
	go func() { done <- runTogether(context.Background(), tracker.run, listener, healer.run) }()
	select {
	case err := <-done:
		if !errors.Is(err, errListener) {
			t.Fatalf("runTogether returned %v, want the listener's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runTogether did not return after the listener did")
	}
	waitFor(t, "tracker cancelled", tracker.cancelled)
	waitFor(t, "healer cancelled", healer.cancelled)
}
