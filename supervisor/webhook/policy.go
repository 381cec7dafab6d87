package webhook

import (
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/backoff"
)

// Retry timing: 1 s doubling to 10 min, each wait cut to a random part of
// itself so that receivers coming back are not hit by every event at once.
const (
	firstRetry = time.Second
	maxRetry   = 10 * time.Minute
)

// afterFailure decides what follows a failed delivery of an event created
// at created, at its attempts-th attempt: the time of the next attempt, or
// dead once giveUpAfter has passed since the event happened. frac, in
// [0, 1), picks the jitter: the wait is between half and all of the delay.
func afterFailure(created, now time.Time, attempts int, giveUpAfter time.Duration, frac float64) (next time.Time, dead bool) {
	if now.Sub(created) >= giveUpAfter {
		return time.Time{}, true
	}
	d := backoff.Delay(firstRetry, maxRetry, attempts)
	d = d/2 + time.Duration(frac*float64(d/2))
	return now.Add(d), false
}
