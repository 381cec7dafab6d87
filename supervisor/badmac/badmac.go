// Package badmac is the Bad MAC policy: when to give up on an organization's
// session keys and how long to wait before relinking.
//
// A burst of Bad MAC errors means the keys are corrupted or another client
// holds the number, so after Limit errors with no quiet gap of ResetAfter
// (from at least MinSenders distinct senders) the counter trips and the
// lifecycle archives the auth directory and relinks. Each WhatsApp message ID
// counts once: whatsmeow asks the sender to retry a message it could not
// decrypt up to four times, and a retry that fails again is the same
// corrupted session, not a new error.
//
// An organization that keeps tripping must not relink in a loop (that is
// what gets numbers banned): from the StormTrips-th trip within StormWindow
// the relink waits at least StormMinWait (the logout cooldown), doubling with
// each further trip, up to StormMaxCooldown. The functions take the time as a
// parameter and return a new Counter instead of changing the one they got,
// so a caller can keep the old value (the lifecycle keeps its committed
// state until the new one is saved).
package badmac

import (
	"slices"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/backoff"
)

// Policy holds the Bad MAC settings ([badmac] in the configuration, plus the
// logout cooldown as the storm's floor; StormWindow is fixed at one hour by
// the design).
type Policy struct {
	Limit            int
	MinSenders       int
	ResetAfter       time.Duration
	RestartDelay     time.Duration
	StormTrips       int
	StormWindow      time.Duration
	StormMinWait     time.Duration
	StormMaxCooldown time.Duration
}

// Counter is one organization's Bad MAC memory. It is persisted (as JSON) so
// that a supervisor restart neither forgets a storm nor resets a half-full
// count.
type Counter struct {
	Count       int       `json:"count"`
	LastErrorAt time.Time `json:"last_error_at"`
	// Recent holds the errors counted since the last reset or trip, newest
	// last, at most maxRecent of them: the message IDs to count once and
	// the senders for MinSenders.
	Recent []Error `json:"recent,omitempty"`
	// Trips holds the trips within StormWindow of the latest one.
	Trips      []time.Time `json:"trips"`
	TotalTrips int         `json:"total_trips"`
}

// Error is one counted Bad MAC error.
type Error struct {
	MessageID string `json:"id,omitempty"`
	Sender    string `json:"sender,omitempty"`
}

// maxRecent bounds Recent: a storm from one sender while MinSenders waits for
// a second one must not grow the persisted counter without end.
const maxRecent = 64

// Outcome says what one observed error did.
type Outcome struct {
	// Counted is false for a message ID already counted since the last reset.
	Counted bool
	Tripped bool
	// Wait is how long the relink must wait after a trip.
	Wait time.Duration
}

// Observe counts one Bad MAC error of messageID from sender at now. The count
// restarts when more than ResetAfter passed since the last error. When the
// count reaches Limit with at least MinSenders distinct senders it trips: the
// count goes back to 0, the trip is recorded, and the relink wait is
// returned. An empty messageID cannot be matched and always counts.
func (p Policy) Observe(c Counter, messageID, sender string, now time.Time) (Counter, Outcome) {
	if p.Current(c, now) == 0 {
		c.Count, c.Recent = 0, nil
	}
	if messageID != "" && slices.ContainsFunc(c.Recent, func(e Error) bool { return e.MessageID == messageID }) {
		return c, Outcome{}
	}
	c.Count++
	c.LastErrorAt = now
	recent := append(slices.Clone(c.Recent), Error{MessageID: messageID, Sender: sender})
	c.Recent = recent[max(0, len(recent)-maxRecent):]
	if c.Count < p.Limit || senders(c.Recent) < max(p.MinSenders, 1) {
		return c, Outcome{Counted: true}
	}
	c, wait := p.Trip(c, now)
	return c, Outcome{Counted: true, Tripped: true, Wait: wait}
}

// Trip records a trip at now, whether the counter reached the limit or an
// operator cleared the session by hand (a manual clear relinks too, so it
// feeds the storm guard), and returns how long the relink must wait.
func (p Policy) Trip(c Counter, now time.Time) (Counter, time.Duration) {
	c.Count, c.Recent = 0, nil
	c.TotalTrips++
	c.Trips = append(slices.DeleteFunc(slices.Clone(c.Trips), func(t time.Time) bool {
		return now.Sub(t) >= p.StormWindow
	}), now)
	return c, p.relinkWait(len(c.Trips))
}

// relinkWait is the wait after the n-th trip within the storm window.
func (p Policy) relinkWait(n int) time.Duration {
	if n < p.StormTrips {
		return p.RestartDelay
	}
	// A cap below the floor must not make a storm relink faster than the
	// logout cooldown or a single trip does.
	floor := max(p.StormMinWait, p.RestartDelay)
	return backoff.Delay(floor, max(p.StormMaxCooldown, floor), n-p.StormTrips+1)
}

// Current is the count as of now: 0 once ResetAfter has passed without an
// error.
func (p Policy) Current(c Counter, now time.Time) int {
	if c.Count == 0 || now.Sub(c.LastErrorAt) > p.ResetAfter {
		return 0
	}
	return c.Count
}

// StormEnds is when the last recorded trip leaves the storm window: until
// then a relink after another trip may still be held back, so a deleted
// organization's memory must outlive its deletion at least that long.
func (p Policy) StormEnds(c Counter) time.Time {
	if len(c.Trips) == 0 {
		return time.Time{}
	}
	return c.Trips[len(c.Trips)-1].Add(p.StormWindow)
}

func senders(errs []Error) int {
	seen := make(map[string]struct{}, len(errs))
	for _, e := range errs {
		seen[e.Sender] = struct{}{}
	}
	return len(seen)
}
