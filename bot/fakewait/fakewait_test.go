package fakewait

import (
	"context"
	"errors"
	"sync"
	"testing"
)

func TestWaitForSeesEveryChange(t *testing.T) {
	var c Changes
	var mu sync.Mutex
	n := 0
	done := make(chan error, 1)
	go func() {
		done <- c.WaitFor(context.Background(), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return n == 100
		})
	}()
	for range 100 {
		mu.Lock()
		n++
		mu.Unlock()
		c.Notify()
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
}

func TestWaitForTrueAtOnce(t *testing.T) {
	var c Changes
	if err := c.WaitFor(context.Background(), func() bool { return true }); err != nil {
		t.Fatalf("WaitFor of a condition already met: %v", err)
	}
}

func TestWaitForEndsWithContext(t *testing.T) {
	var c Changes
	ctx, cancel := context.WithCancel(context.Background())
	checks := 0
	err := c.WaitFor(ctx, func() bool {
		checks++
		if checks == 1 {
			cancel()
			c.Notify()
		}
		return false
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitFor = %v, want context.Canceled", err)
	}
}
