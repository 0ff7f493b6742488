package main

import (
	"sync"
	"sync/atomic"
)

// nopLogger silences the Temporal SDK.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// fanOut runs do(i) for i = 1..n on callers goroutines, each taking the next
// i as it finishes the last, and returns when all are done.
func fanOut(callers, n int, do func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				do(i)
			}
		}()
	}
	wg.Wait()
}
