package watch

import (
	"sync"

	"github.com/ethereum/go-ethereum/common"
)

// WatchSet is the set of watched deposit addresses. Matching a log is one map
// lookup on the 20-byte address (case does not exist at this level: hex case
// is only a rendering), so it scales to millions of addresses.
type WatchSet struct {
	mu sync.RWMutex
	m  map[common.Address]struct{}
}

// NewWatchSet returns an empty set sized for n addresses.
func NewWatchSet(n int) *WatchSet {
	return &WatchSet{m: make(map[common.Address]struct{}, n)}
}

// Add adds addresses; it reports how many were new.
func (w *WatchSet) Add(addrs ...common.Address) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range addrs {
		if _, ok := w.m[a]; !ok {
			w.m[a] = struct{}{}
			n++
		}
	}
	return n
}

// Has reports whether a is watched.
func (w *WatchSet) Has(a common.Address) bool {
	w.mu.RLock()
	_, ok := w.m[a]
	w.mu.RUnlock()
	return ok
}

// Len is the number of watched addresses.
func (w *WatchSet) Len() int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return len(w.m)
}
