package watch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain/evm"
)

// fakeConn is a dialled WebSocket connection that records its Close.
type fakeConn struct {
	subscribeErr error
	sub          *fakeSub
	closed       chan struct{}
	closeOnce    sync.Once
}

func newFakeConn(subscribeErr error) *fakeConn {
	return &fakeConn{subscribeErr: subscribeErr, sub: &fakeSub{err: make(chan error, 1)}, closed: make(chan struct{})}
}

func (c *fakeConn) SubscribeNewHead(context.Context, chan<- *types.Header) (ethereum.Subscription, error) {
	if c.subscribeErr != nil {
		return nil, c.subscribeErr
	}
	return c.sub, nil
}

func (c *fakeConn) Close() { c.closeOnce.Do(func() { close(c.closed) }) }

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

type fakeSub struct{ err chan error }

func (s *fakeSub) Unsubscribe()      {}
func (s *fakeSub) Err() <-chan error { return s.err }

// headBackend answers BlockNumber only, which is all followHeads asks of it.
type headBackend struct{ evm.Backend }

func (headBackend) BlockNumber(context.Context) (uint64, error) { return 1, nil }

// TestFollowHeadsClosesReplacedConnections: every WebSocket client followHeads
// dials is closed once it is done with it: when its subscription drops and a
// new one is dialled, when subscribing on it fails, and when ctx ends. It used
// to drop them unclosed, leaking a client per reconnect.
func TestFollowHeadsClosesReplacedConnections(t *testing.T) {
	conns := []*fakeConn{
		newFakeConn(nil), // subscribes, then drops
		newFakeConn(errors.New("subscribe: EOF")), // dials, cannot subscribe
		newFakeConn(nil), // the live one when ctx ends
	}
	dialled := make(chan *fakeConn, len(conns))
	next := 0
	dial := func(context.Context) (HeadSubscriber, error) {
		if next == len(conns) {
			return nil, errors.New("no more connections")
		}
		c := conns[next]
		next++
		dialled <- c
		return c, nil
	}
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not closed", what)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		followHeads(ctx, dial, headBackend{}, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)),
			func(context.Context, uint64) {})
	}()

	<-dialled
	conns[0].sub.err <- errors.New("websocket: close 1006")
	wait("the connection whose subscription dropped", conns[0].closed)
	<-dialled
	wait("the connection that could not subscribe", conns[1].closed)
	<-dialled
	if conns[2].isClosed() {
		t.Fatal("the live connection was closed while in use")
	}
	cancel()
	<-done
	wait("the live connection when ctx ended", conns[2].closed)
}
