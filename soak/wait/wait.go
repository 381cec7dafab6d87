// Package wait is the soak's one way of waiting for the system to reach a
// state: poll a check until it passes or a deadline ends, and say what was
// awaited and what was last seen when it does not.
package wait

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// every is the polling period: short next to the supervisor's own timings
// (start_gap 300 ms, health 1 s), long enough not to load the status API.
const every = 100 * time.Millisecond

// Fatal wraps what a check saw that the awaited state can no longer
// follow (a QR where a crash must keep the link): the wait ends at once.
func Fatal(err error) error { return fatal{err} }

type fatal struct{ error }

func (f fatal) Unwrap() error { return f.error }

// For polls check until it returns nil. It fails when timeout passes, with
// what and the check's last error, when the check returns a Fatal error,
// or when ctx ends.
func For(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		var f fatal
		if errors.As(err, &f) {
			return fmt.Errorf("waiting for %s: %w", what, f.error)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last seen: %v)", what, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}
