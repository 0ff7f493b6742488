package main

import (
	"context"
	"sync"
)

// runTogether runs tasks until ctx ends or the first of them returns, then
// cancels the others and returns once every task has returned, with the
// first one's error. Nothing a task uses may be closed before it returns, so
// none is left running behind the caller.
func runTogether(ctx context.Context, tasks ...func(context.Context) error) error {
	if len(tasks) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(tasks))
	var wg sync.WaitGroup
	for _, task := range tasks {
		wg.Go(func() { errs <- task(ctx) })
	}
	err := <-errs
	cancel()
	wg.Wait()
	return err
}
