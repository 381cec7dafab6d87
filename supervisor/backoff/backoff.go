// Package backoff computes how long the supervisor waits before restarting a
// worker that crashed, so that a worker failing at start does not spin and a
// host with many organizations does not restart them in lockstep.
package backoff

import "time"

// Delay is the wait before restart attempt number attempt (1-based): min for
// the first attempt, doubling with each further attempt, never above max.
// Attempts below 1 are treated as the first. Large attempt numbers return
// max instead of overflowing, because crash counters are never reset on a
// schedule and may grow without bound.
func Delay(min, max time.Duration, attempt int) time.Duration {
	if min >= max {
		return max
	}
	if attempt < 1 {
		attempt = 1
	}
	shift := attempt - 1
	// min<<shift > max exactly when min > max>>shift; testing the latter
	// shifts only when the result cannot overflow.
	if shift >= 63 || min > max>>shift {
		return max
	}
	return min << shift
}
