package evm

// SharedCallers is how many callers share the read of key now in flight
// on b (a NewSharedReads backend): 0 when none is.
func SharedCallers(b Backend, key string) int {
	s := b.(*sharedReads)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.inflight[key]; ok {
		return r.callers
	}
	return 0
}
