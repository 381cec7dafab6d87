package fleet

import (
	"context"
	"sync"
)

// counter counts worker processes that have not been reaped, so Shutdown
// can wait for the last one. Unlike a WaitGroup it may go up again while
// someone waits.
type counter struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed while n == 0
}

func newCounter() *counter {
	c := &counter{zero: make(chan struct{})}
	close(c.zero)
	return c
}

func (c *counter) add(d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.n
	c.n += d
	switch {
	case was == 0 && c.n > 0:
		c.zero = make(chan struct{})
	case was > 0 && c.n == 0:
		close(c.zero)
	}
}

func (c *counter) value() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitZero returns once no process is left, or ctx's error.
func (c *counter) waitZero(ctx context.Context) error {
	for {
		c.mu.Lock()
		n, zero := c.n, c.zero
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-zero:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
