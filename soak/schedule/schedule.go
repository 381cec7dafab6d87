// Package schedule draws the soak's plan from a seed: which disruption
// happens when and to which organizations. It is pure, so one seed is one plan and a failing run can be repeated
// event for event (the system's own timing still varies).
package schedule

import (
	"math/rand/v2"
	"time"
)

// Kind is a disruption.
type Kind string

const (
	BadMAC      Kind = "badmac"       // a Bad MAC storm on 1-3 orgs at once, then relink by QR
	WorkerKill  Kind = "worker_kill"  // kill -9 of 1-2 orgs' workers
	Logout      Kind = "logout"       // WhatsApp's LOGOUT, the cooldown, then relink by QR
	RestartTerm Kind = "restart_term" // SIGTERM to the supervisor, then start it again
	RestartKill Kind = "restart_kill" // SIGKILL to the supervisor, then start it again
	// Quiet is a pause with every organization connected, for measuring
	// the supervisor at rest; it is no disruption.
	Quiet Kind = "quiet"
)

// Event is one disruption at an offset from the start of the run.
type Event struct {
	At   time.Duration
	Kind Kind
	Orgs []int         // indexes of the organizations; empty for restarts and pauses
	For  time.Duration // how long a Quiet pause lasts
}

// Plan is the whole schedule.
type Plan struct {
	Events []Event
	// FinalLogout and FinalBadMAC are the organizations left in a hold
	// across the final supervisor restart: one logged out, one tripped
	// by a Bad MAC storm and not relinked.
	FinalLogout, FinalBadMAC int
}

// Pacing of the events: a gap drawn between these after each one. Events
// on one organization wait for the one before to finish, so a busy
// organization falls behind the plan rather than overlapping itself.
const (
	minGap = 2 * time.Second
	maxGap = 6 * time.Second
	// Every quietEvery of events, a pause of quietFor: the supervisor's
	// resources are compared at rest (see package resources), and a
	// sample every 2 s gives each pause a few.
	quietEvery = 20 * time.Second
	quietFor   = 8 * time.Second
)

// weights are the odds of each kind among org events, and of a restart
// while restarts are allowed.
var weights = []struct {
	kind   Kind
	weight int
}{{BadMAC, 35}, {WorkerKill, 35}, {Logout, 15}, {RestartTerm, 8}, {RestartKill, 7}}

// New draws the plan of a run of length for orgs organizations (at least
// two). Supervisor restarts fall in the first half only: the second half
// is one supervisor lifetime, long enough to judge whether its memory,
// goroutines and files stop growing.
func New(seed uint64, length time.Duration, orgs int) Plan {
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	var p Plan
	sinceQuiet := time.Duration(0)
	for at := gap(rng); at < length; {
		k := pick(rng, at < length/2)
		ev := Event{At: at, Kind: k}
		switch k {
		case BadMAC:
			ev.Orgs = some(rng, orgs, 1+rng.IntN(3))
		case WorkerKill:
			ev.Orgs = some(rng, orgs, 1+rng.IntN(2))
		case Logout:
			ev.Orgs = some(rng, orgs, 1)
		}
		p.Events = append(p.Events, ev)
		g := gap(rng)
		at += g
		sinceQuiet += g
		if sinceQuiet >= quietEvery && at < length {
			p.Events = append(p.Events, Event{At: at, Kind: Quiet, For: quietFor})
			at += quietFor
			sinceQuiet = 0
		}
	}
	two := some(rng, orgs, 2)
	p.FinalLogout, p.FinalBadMAC = two[0], two[1]
	return p
}

func gap(rng *rand.Rand) time.Duration {
	return minGap + time.Duration(rng.Int64N(int64(maxGap-minGap)))
}

func pick(rng *rand.Rand, restarts bool) Kind {
	total := 0
	for _, w := range weights {
		if restarts || (w.kind != RestartTerm && w.kind != RestartKill) {
			total += w.weight
		}
	}
	n := rng.IntN(total)
	for _, w := range weights {
		if !restarts && (w.kind == RestartTerm || w.kind == RestartKill) {
			continue
		}
		if n < w.weight {
			return w.kind
		}
		n -= w.weight
	}
	panic("unreachable: n is below the sum of the weights")
}

// some draws k distinct organizations out of n, all n when k is more.
func some(rng *rand.Rand, n, k int) []int {
	return rng.Perm(n)[:min(k, n)]
}
