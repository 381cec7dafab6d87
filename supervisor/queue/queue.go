// Package queue decides which organization's worker may start next and when.
//
// WhatsApp reads many simultaneous connects from one IP as automation, so
// starts are serialized: at most MaxLive workers hold a slot host-wide and at
// most MaxPerEgress per egress (the IP a worker leaves through: direct, or
// one proxy), only one start is in flight at a time, consecutive starts are
// at least Gap apart, and each gets a random jitter on top.
//
// A slot is held from admission until the caller gives it back with Cancel,
// which the lifecycle does only once the worker process has been reaped: a
// process that is still closing keeps counting against the cap. Requests are
// named by Tickets, so an answer about an old request (a grant that arrives
// after the organization moved on) can never be mistaken for the current one.
//
// The queue is a pure decision structure: it never sleeps or reads the clock;
// the caller passes the time and waits until the returned instant itself. It
// is not goroutine-safe.
package queue

import (
	"maps"
	"math/rand/v2"
	"slices"
	"time"
)

// Config bounds the start queue. It mirrors the [workers] section of the
// configuration.
type Config struct {
	MaxLive int
	// MaxPerEgress caps the slots of one egress; 0 means MaxLive.
	MaxPerEgress         int
	Gap                  time.Duration
	JitterMin, JitterMax time.Duration
}

// Ticket names one request for a slot. An organization asks with a new N
// every time; Epoch tells apart the lifetimes of one organization (deleted
// and registered again starts its N over); Egress is where its worker will
// connect from.
type Ticket struct {
	Org    string
	Epoch  uint64
	N      uint64
	Egress string
}

// Queue holds the waiting requests, the one whose start is in flight
// (admitted) and the slots in use.
type Queue struct {
	cfg     Config
	jitter  func(min, max time.Duration) time.Duration
	waiting []Ticket
	// admitted is the ticket returned by Next that has no outcome yet.
	admitted    Ticket
	hasAdmitted bool
	held        map[Ticket]struct{}
	perEgress   map[string]int
	// lastAt is the At of the previous admission, kept across Cancel so a
	// failed start cannot make the next one skip the gap.
	lastAt  time.Time
	hasLast bool
}

// New returns an empty queue. jitter picks a delay in [min, max]; nil means
// uniformly random, and tests pass a deterministic one.
func New(cfg Config, jitter func(min, max time.Duration) time.Duration) *Queue {
	if jitter == nil {
		jitter = uniform
	}
	if cfg.MaxPerEgress <= 0 {
		cfg.MaxPerEgress = cfg.MaxLive
	}
	return &Queue{cfg: cfg, jitter: jitter, held: map[Ticket]struct{}{}, perEgress: map[string]int{}}
}

func uniform(min, max time.Duration) time.Duration {
	if max <= min {
		return min
	}
	return min + rand.N(max-min+1)
}

// Request puts t at the tail unless it is already waiting or holds a slot;
// it reports whether it was added.
func (q *Queue) Request(t Ticket) bool {
	if q.Holds(t) || slices.Contains(q.waiting, t) {
		return false
	}
	q.waiting = append(q.waiting, t)
	return true
}

// Cancel withdraws t wherever it is: a waiting request leaves the queue, an
// admitted or started one gives its slot back. Unknown tickets are ignored.
func (q *Queue) Cancel(t Ticket) {
	if i := slices.Index(q.waiting, t); i >= 0 {
		q.waiting = slices.Delete(q.waiting, i, i+1)
	}
	if q.hasAdmitted && q.admitted == t {
		q.hasAdmitted = false
	}
	if _, ok := q.held[t]; ok {
		delete(q.held, t)
		if q.perEgress[t.Egress]--; q.perEgress[t.Egress] <= 0 {
			delete(q.perEgress, t.Egress)
		}
	}
}

// Next admits the first waiting request whose egress has a free slot, when
// the host has one and no other start is in flight. It returns the ticket
// and the time its start may begin: max(now, previous admission's At + Gap)
// + jitter. ok is false when nothing can be admitted now.
func (q *Queue) Next(now time.Time) (t Ticket, at time.Time, ok bool) {
	if q.hasAdmitted || len(q.held) >= q.cfg.MaxLive {
		return Ticket{}, time.Time{}, false
	}
	i := slices.IndexFunc(q.waiting, func(w Ticket) bool { return q.perEgress[w.Egress] < q.cfg.MaxPerEgress })
	if i < 0 {
		return Ticket{}, time.Time{}, false
	}
	t = q.waiting[i]
	q.waiting = slices.Delete(q.waiting, i, i+1)
	q.admitted, q.hasAdmitted = t, true
	q.held[t] = struct{}{}
	q.perEgress[t.Egress]++

	at = now
	if q.hasLast {
		at = later(at, q.lastAt.Add(q.cfg.Gap))
	}
	at = at.Add(q.jitter(q.cfg.JitterMin, q.cfg.JitterMax))
	q.lastAt, q.hasLast = at, true
	return t, at, true
}

// Spawned records when the admitted start really began, which may be later
// than its At (the organization's runner was busy): the gap counts from the
// real start, so two spawns are never closer than Gap.
func (q *Queue) Spawned(t Ticket, at time.Time) {
	if q.hasAdmitted && q.admitted == t {
		q.lastAt = later(q.lastAt, at)
	}
}

// Started marks the admitted start finished, successful or not, so the next
// one may be admitted; the slot stays held until Cancel. A ticket that is not
// the admitted one is ignored.
func (q *Queue) Started(t Ticket) {
	if q.hasAdmitted && q.admitted == t {
		q.hasAdmitted = false
	}
}

// What a request waits for, as WaitsFor reports it.
const (
	// WaitMaxLive: every one of the host's MaxLive slots is held.
	WaitMaxLive = "max_live"
	// WaitMaxPerEgress: its egress holds MaxPerEgress slots.
	WaitMaxPerEgress = "max_live_per_egress"
	// WaitTurn: a slot is free, but starts go one at a time, in order.
	WaitTurn = "turn"
	// WaitGap: admitted, its start is due after the gap and the jitter.
	WaitGap = "start_gap"
)

// WaitsFor reports what org's request waits for, or "" when org has none
// waiting: the host's cap first, then its egress's, else its turn.
func (q *Queue) WaitsFor(org string) string {
	if q.hasAdmitted && q.admitted.Org == org {
		return WaitGap
	}
	i := slices.IndexFunc(q.waiting, func(t Ticket) bool { return t.Org == org })
	switch {
	case i < 0:
		return ""
	case len(q.held) >= q.cfg.MaxLive:
		return WaitMaxLive
	case q.perEgress[q.waiting[i].Egress] >= q.cfg.MaxPerEgress:
		return WaitMaxPerEgress
	}
	return WaitTurn
}

// Depth is the number of waiting requests.
func (q *Queue) Depth() int { return len(q.waiting) }

// LiveByEgress is the number of slots in use on each egress that has any.
func (q *Queue) LiveByEgress() map[string]int { return maps.Clone(q.perEgress) }

// Holds reports whether t holds a slot (admitted or started).
func (q *Queue) Holds(t Ticket) bool {
	_, ok := q.held[t]
	return ok
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
