package btc

import (
	"sync"

	"github.com/btcsuite/btcd/chaincfg"
)

// WatchSet is the set of watched deposit addresses, keyed by their output
// script: matching an output is one map lookup. Safe for concurrent use.
type WatchSet struct {
	params   *chaincfg.Params
	mu       sync.RWMutex
	byScript map[string]string // output script -> address
}

// NewWatchSet makes an empty set for params' network.
func NewWatchSet(params *chaincfg.Params) *WatchSet {
	return &WatchSet{params: params, byScript: map[string]string{}}
}

// Add watches address (a P2WPKH address of the set's network, ErrAddress
// otherwise) and returns its canonical (lowercase) form. Adding it again is
// harmless.
func (w *WatchSet) Add(address string) (string, error) {
	a, script, err := ParseAddress(address, w.params)
	if err != nil {
		return "", err
	}
	canon := a.EncodeAddress()
	w.mu.Lock()
	w.byScript[string(script)] = canon
	w.mu.Unlock()
	return canon, nil
}

// Match returns the watched address an output script pays, if any.
func (w *WatchSet) Match(script []byte) (string, bool) {
	w.mu.RLock()
	a, ok := w.byScript[string(script)]
	w.mu.RUnlock()
	return a, ok
}

// Len is the number of watched addresses.
func (w *WatchSet) Len() int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return len(w.byScript)
}
