// Package badmac is the Bad MAC policy: when to give up on an organization's
// session keys and how long to wait before relinking.
//
// A burst of Bad MAC errors means the keys are corrupted or another client
// holds the number, so after Limit errors with no quiet gap of ResetAfter the
// counter trips and the fleet archives the auth directory and relinks. An
// organization that keeps tripping must not relink in a loop (that is what
// gets numbers banned), so from the StormTrips-th trip within StormWindow on
// each relink waits twice as long as the previous one, up to
// StormMaxCooldown. The decisions take the time as a parameter and keep
// their memory in a Counter that the registry persists, so a supervisor
// restart neither forgets a storm nor resets a half-full counter.
package badmac

import (
	"slices"
	"time"
)

// Policy holds the Bad MAC settings ([badmac] in the configuration;
// StormWindow is fixed at one hour by the design).
type Policy struct {
	Limit            int
	ResetAfter       time.Duration
	RestartDelay     time.Duration
	StormTrips       int
	StormWindow      time.Duration
	StormMaxCooldown time.Duration
}

// Counter is one organization's Bad MAC memory, persisted as JSON by the
// registry.
type Counter struct {
	Count       int       `json:"count"`
	LastErrorAt time.Time `json:"last_error_at"`
	// Trips holds the trips within StormWindow of the latest one.
	Trips      []time.Time   `json:"trips"`
	TotalTrips int           `json:"total_trips"`
	LastWait   time.Duration `json:"last_wait"`
}

// Observe counts one Bad MAC error at now: the count restarts when more than
// ResetAfter passed since the last error. When the count reaches Limit it
// trips: the count goes back to 0, the trip is recorded, and the relink wait
// is returned.
func (p Policy) Observe(c *Counter, now time.Time) (tripped bool, wait time.Duration) {
	c.Count = p.Current(*c, now) + 1
	c.LastErrorAt = now
	if c.Count < p.Limit {
		return false, 0
	}
	return true, p.Trip(c, now)
}

// Trip records a trip at now, whether the counter reached the limit or an
// operator cleared the session by hand (a manual clear relinks too, so it
// feeds the storm guard), and returns how long the relink must wait.
func (p Policy) Trip(c *Counter, now time.Time) time.Duration {
	c.Count = 0
	c.TotalTrips++
	// Prune without writing into the old backing array: a caller holding a
	// copy of the Counter must not see its Trips change underneath it.
	c.Trips = append(slices.DeleteFunc(slices.Clone(c.Trips), func(t time.Time) bool {
		return now.Sub(t) >= p.StormWindow
	}), now)
	return p.relinkWait(c)
}

// relinkWait decides the wait for the trip just recorded in c and remembers
// it, so the next trip of a storm can double it.
func (p Policy) relinkWait(c *Counter) time.Duration {
	if len(c.Trips) < p.StormTrips {
		c.LastWait = p.RestartDelay
		return c.LastWait
	}
	prev := max(c.LastWait, p.RestartDelay)
	wait := p.StormMaxCooldown
	if prev <= p.StormMaxCooldown/2 {
		wait = 2 * prev
	}
	// A cap below RestartDelay must not make a storm relink faster than a
	// single trip does.
	c.LastWait = max(wait, p.RestartDelay)
	return c.LastWait
}

// Current is the count as of now: 0 once ResetAfter has passed without an
// error.
func (p Policy) Current(c Counter, now time.Time) int {
	if c.Count == 0 || now.Sub(c.LastErrorAt) > p.ResetAfter {
		return 0
	}
	return c.Count
}
