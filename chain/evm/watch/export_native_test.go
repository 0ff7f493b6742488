package watch

// NativeSkipped is how many transactions, by type, l's native deposit scan
// skipped because it could not decode them.
func NativeSkipped(l *Listener) map[string]uint64 { return l.native.skipped.snapshot() }
