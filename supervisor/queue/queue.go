// Package queue decides which organization's worker may start next and when.
//
// WhatsApp reads simultaneous connects from one IP as automation, so starts
// are serialized: at most MaxLive workers hold a slot, only one start is in
// flight at a time, consecutive starts are at least Gap apart, and each gets
// a random jitter on top. The queue is a pure decision structure: it never
// sleeps or reads the clock; the caller passes the time and waits until the
// returned instant itself. It is not goroutine-safe.
package queue

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Config bounds the start queue. It mirrors the [workers] section of the
// configuration: MaxLive, StartGap and StartJitter.
type Config struct {
	MaxLive              int
	Gap                  time.Duration
	JitterMin, JitterMax time.Duration
}

// Queue holds organizations waiting to start, the one whose start is in
// flight (admitted) and the ones whose workers are live.
type Queue struct {
	cfg     Config
	jitter  func(min, max time.Duration) time.Duration
	waiting []string
	// admitted is the org returned by Next and not yet Started or Removed;
	// "" when no start is in flight.
	admitted string
	live     map[string]struct{}
	// lastAt is the At of the previous admission, kept across Remove so a
	// crashed start cannot make the next one skip the gap.
	lastAt  time.Time
	hasLast bool // whether any org was ever admitted
}

// New returns an empty queue. jitter picks a delay in [min, max]; nil means
// uniformly random, and tests pass a deterministic one.
func New(cfg Config, jitter func(min, max time.Duration) time.Duration) *Queue {
	if jitter == nil {
		jitter = uniform
	}
	return &Queue{cfg: cfg, jitter: jitter, live: make(map[string]struct{})}
}

func uniform(min, max time.Duration) time.Duration {
	if max <= min {
		return min
	}
	return min + rand.N(max-min+1)
}

// Push adds org at the tail unless it is already waiting, admitted or live;
// it reports whether it was added.
func (q *Queue) Push(org string) bool {
	if q.IsLive(org) || slices.Contains(q.waiting, org) {
		return false
	}
	q.waiting = append(q.waiting, org)
	return true
}

// Remove forgets org wherever it is (waiting, admitted or live), freeing its
// slot. Removing an unknown org does nothing.
func (q *Queue) Remove(org string) {
	if i := slices.Index(q.waiting, org); i >= 0 {
		q.waiting = slices.Delete(q.waiting, i, i+1)
	}
	if q.admitted == org {
		q.admitted = ""
	}
	delete(q.live, org)
}

// Next admits the head of the queue when a slot is free and no other start
// is in flight. It returns the org and the time its spawn may begin:
// max(now, previous admission's At + Gap) + jitter. ok is false when nothing
// can be admitted now (empty, all slots taken, or a start in flight).
func (q *Queue) Next(now time.Time) (org string, at time.Time, ok bool) {
	if q.admitted != "" || len(q.waiting) == 0 || q.Live() >= q.cfg.MaxLive {
		return "", time.Time{}, false
	}
	org = q.waiting[0]
	q.waiting = slices.Delete(q.waiting, 0, 1)
	q.admitted = org

	at = now
	if q.hasLast {
		if earliest := q.lastAt.Add(q.cfg.Gap); earliest.After(at) {
			at = earliest
		}
	}
	at = at.Add(q.jitter(q.cfg.JitterMin, q.cfg.JitterMax))
	q.lastAt, q.hasLast = at, true
	return org, at, true
}

// Started marks the admitted org's spawn finished, successful or not (after
// a failed spawn call Remove too); it becomes live and the next start may be
// admitted. Started for an org that is not the admitted one does nothing.
// That check knows orgs, not launches: after Remove, Push and a new Next for
// the same org, a Started left over from the old launch would match the new
// admission. Callers must not call Started for a stale launch; the fleet
// guarantees this by checking its launch generation before calling it.
func (q *Queue) Started(org string) {
	if org == "" || q.admitted != org {
		return
	}
	q.admitted = ""
	q.live[org] = struct{}{}
}

// Depth is the number of waiting orgs.
func (q *Queue) Depth() int { return len(q.waiting) }

// Live is the number of slots in use: the admitted org plus the live ones.
func (q *Queue) Live() int {
	n := len(q.live)
	if q.admitted != "" {
		n++
	}
	return n
}

// IsLive reports whether org holds a slot (admitted or live).
func (q *Queue) IsLive(org string) bool {
	if org != "" && q.admitted == org {
		return true
	}
	_, ok := q.live[org]
	return ok
}
