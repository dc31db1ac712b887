// Package fakewait owns how the loopback fakes of Slack and the Bot
// Connector let a test wait for their state to change, instead of sleeping:
// every change wakes every waiter, which then checks its own condition.
package fakewait

import (
	"context"
	"fmt"
	"sync"
)

// Changes wakes waiters whenever its owner's state changes. The zero value
// is ready to use; it is safe for concurrent use.
type Changes struct {
	mu sync.Mutex
	ch chan struct{} // closed and replaced on every change
}

// Notify wakes everyone waiting. The owner calls it after each change, with
// the change visible to the conditions waiters check.
func (c *Changes) Notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
	}
	c.ch = make(chan struct{})
}

// Next is closed at the next Notify. Take it before reading the state it
// guards, so a change made in between is not missed.
func (c *Changes) Next() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// WaitFor blocks until cond reports true or ctx ends. cond is checked at
// once and after each change; it may lock the owner's state, as Changes
// holds no lock of the owner's while it runs.
func (c *Changes) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		next := c.Next()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met: %w", ctx.Err())
		case <-next:
		}
	}
}
