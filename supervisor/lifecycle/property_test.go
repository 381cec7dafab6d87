package lifecycle

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/queue"
)

// world runs several organizations through Step with the real start queue
// and an environment that completes effects in any order, the way processes,
// archives and timers race in the supervisor. It checks the promises after
// every step.
type world struct {
	t   *testing.T
	r   *rand.Rand
	p   Policy
	now time.Time
	q   *queue.Queue
	max int

	orgs map[string]Org
	// procs counts processes per organization: launching, running or closing.
	procs     map[string]int
	archiving map[string]bool
	// launching maps an org to its launch in flight and whether it was cancelled.
	launching map[string]*flight
	pending   []event
	log       []string
}

type flight struct {
	gen       int
	cancelled bool
	restore   bool // the launch expected a device in the store
}

type event struct {
	org string
	in  Input
}

func newWorld(t *testing.T, seed uint64, n, maxLive int) *world {
	w := &world{
		t: t, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b9)), p: policy(), now: t0,
		q:    queue.New(queue.Config{MaxLive: maxLive}, func(min, max time.Duration) time.Duration { return 0 }),
		max:  maxLive,
		orgs: map[string]Org{}, procs: map[string]int{}, archiving: map[string]bool{}, launching: map[string]*flight{},
	}
	w.p.CrashLimit = 3
	for i := range n {
		w.orgs[fmt.Sprint("o", i)] = New(fmt.Sprint("o", i))
	}
	return w
}

func (w *world) fail(format string, a ...any) {
	w.t.Helper()
	tail := w.log[max(0, len(w.log)-25):]
	w.t.Fatalf("%s\nlast steps:\n%s", fmt.Sprintf(format, a...), fmt.Sprint(slices.Concat(tail)))
}

// feed applies one input and carries out its effects.
func (w *world) feed(id string, in Input) {
	w.t.Helper()
	before := w.orgs[id]
	r := Step(before, in, w.now, w.p)
	w.log = append(w.log, fmt.Sprintf("%s %T%+v -> %s %T\n", id, in, in, r.Org.Status, r.Err))
	_, isClear := in.(Clear)
	switch in.(type) {
	case Start, Clear:
		if before.Hold.Active(w.now) {
			var he *HoldError
			if !errors.As(r.Err, &he) && !(isClear && before.Deleted && errors.Is(r.Err, ErrUnknownOrg)) {
				w.fail("%s: %T during a hold answered %v", id, in, r.Err)
			}
		}
	}
	if r.Err != nil {
		return
	}
	o := r.Org
	if o.Hold.Until.Before(before.Hold.Until) {
		w.fail("%s: hold shortened from %v to %v by %T", id, before.Hold.Until, o.Hold.Until, in)
	}
	if o.Run && !o.Deleted && o.Hold.Active(w.now) && o.Status != "cooldown" && o.Status != "banned" {
		w.fail("%s: status %s during a hold", id, o.Status)
	}
	w.orgs[id] = o
	for _, e := range r.Effects {
		w.effect(id, o, e)
	}
	w.checkCap()
}

func (w *world) ticket(id string, n uint64) queue.Ticket { return queue.Ticket{Org: id, N: n} }

func (w *world) effect(id string, o Org, e Effect) {
	w.t.Helper()
	switch e := e.(type) {
	case RequestSlot:
		w.q.Request(w.ticket(id, e.N))
		w.pump()
	case ReleaseSlot:
		if w.q.Holds(w.ticket(id, e.N)) && w.procs[id] > 0 {
			w.fail("%s: slot released with a process alive", id)
		}
		w.q.Cancel(w.ticket(id, e.N))
		w.pump()
	case LaunchDone:
		w.q.Started(w.ticket(id, e.N))
		w.pump()
	case Launch:
		switch {
		case w.procs[id] > 0:
			w.fail("%s: launch with a process alive", id)
		case w.archiving[id]:
			w.fail("%s: launch during an archive", id)
		case !w.q.Holds(w.ticket(id, o.Slot.N)):
			w.fail("%s: launch without a slot", id)
		case !o.Run || o.Deleted || o.Hold.Active(w.now) || o.ArchivePending != "":
			w.fail("%s: launch of %+v", id, o.Record)
		}
		w.procs[id]++
		w.launching[id] = &flight{gen: e.Gen, restore: e.Restoring}
	case CancelLaunch:
		if f := w.launching[id]; f != nil && f.gen == e.Gen {
			f.cancelled = true
		}
	case Close:
		w.pending = append(w.pending, event{id, Reaped{Gen: e.Gen}})
	case Archive:
		if w.procs[id] > 0 || w.archiving[id] {
			w.fail("%s: archive with a process alive or another archive running", id)
		}
		w.archiving[id] = true
		if w.r.IntN(4) == 0 {
			w.pending = append(w.pending, event{id, ArchiveFailed{Reason: e.Reason, Err: "EPERM"}})
		} else {
			w.pending = append(w.pending, event{id, Archived{Reason: e.Reason}})
		}
	case LogoutWorker:
		errText := ""
		if w.r.IntN(3) == 0 {
			errText = "refused"
		}
		w.pending = append(w.pending, event{id, LogoutDone{Gen: e.Gen, Err: errText}})
	}
}

func (w *world) pump() {
	for {
		t, _, ok := w.q.Next(w.now)
		if !ok {
			return
		}
		w.pending = append(w.pending, event{t.Org, SlotGranted{N: t.N, Egress: t.Egress}})
	}
}

func (w *world) checkCap() {
	total := 0
	for _, n := range w.procs {
		total += n
	}
	if total > w.max || liveSlots(w.q) > w.max {
		w.fail("%d processes, %d slots in use, cap %d", total, liveSlots(w.q), w.max)
	}
}

// complete delivers one pending outcome, picked at random.
func (w *world) complete() {
	i := w.r.IntN(len(w.pending))
	ev := w.pending[i]
	w.pending = slices.Delete(w.pending, i, i+1)
	switch in := ev.in.(type) {
	case Reaped:
		if w.orgs[ev.org].Proc.Gen == in.Gen {
			w.procs[ev.org]--
		}
	case Archived, ArchiveFailed:
		w.archiving[ev.org] = false
	}
	w.feed(ev.org, ev.in)
}

// finishLaunch resolves a launch in flight: a cancelled one may still have
// succeeded before the cancel landed.
func (w *world) finishLaunch(id string) {
	f := w.launching[id]
	delete(w.launching, id)
	switch {
	case f.cancelled && w.r.IntN(2) == 0, w.r.IntN(5) == 0:
		w.procs[id]--
		w.feed(id, LaunchFailed{Gen: f.gen, Cancelled: f.cancelled, Err: "boom"})
	default:
		restoring := w.r.IntN(2) == 0
		// A restore whose store lost its device answers device_missing.
		w.feed(id, Launched{Gen: f.gen, PID: f.gen, Restoring: restoring, DeviceMissing: f.restore && !restoring})
	}
}

func (w *world) workerEvent(id string) {
	o := w.orgs[id]
	g := o.Proc.Gen
	events := []Input{
		QRShown{Gen: g, Code: "c"}, Paired{Gen: g, JID: "j"}, Connected{Gen: g, JID: "j"}, Disconnected{Gen: g},
		LoggedOut{Gen: g}, Replaced{Gen: g}, Banned{Gen: g, Until: w.now.Add(time.Duration(w.r.IntN(600)) * time.Second)},
		Banned{Gen: g}, BadMAC{Gen: g, MessageID: fmt.Sprint(w.r.IntN(8)), Sender: "s"}, QRGaveUp{Gen: g},
		StreamEnded{Gen: g, Err: "EOF"}, Unhealthy{Gen: g, Err: "timeout"}, MessageReceived{Gen: g},
	}
	// Bad MACs come in bursts in real life; weight them.
	if w.r.IntN(3) == 0 {
		w.feed(id, events[8])
		return
	}
	w.feed(id, events[w.r.IntN(len(events))])
}

func (w *world) operator(id string) {
	ops := []Input{Start{Fingerprint: "fp"}, Start{Force: true}, Stop{}, Clear{}, Delete{}, Logout{}}
	w.feed(id, ops[w.r.IntN(len(ops))])
}

func (w *world) run(steps int) {
	ids := make([]string, 0, len(w.orgs))
	for id := range w.orgs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for range steps {
		id := ids[w.r.IntN(len(ids))]
		switch k := w.r.IntN(10); {
		case k < 2:
			w.operator(id)
		case k < 4 && w.orgs[id].Proc.Phase == ProcRunning:
			w.workerEvent(id)
		case k < 5 && w.launching[id] != nil:
			w.finishLaunch(id)
		case k < 8 && len(w.pending) > 0:
			w.complete()
		default:
			w.now = w.now.Add(time.Duration(w.r.IntN(90)) * time.Second)
			for _, id := range ids {
				if at := w.orgs[id].WakeAt; !at.IsZero() && !at.After(w.now) {
					w.feed(id, Tick{})
				}
			}
		}
	}
}

// Whatever the order of operator calls, worker events and effect outcomes,
// no organization ever has two processes, no launch overlaps an archive or
// a hold, the host-wide cap holds, and holds are never shortened or
// bypassed.
func TestPromisesHoldUnderAnyTiming(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 30
	}
	for seed := range uint64(seeds) {
		w := newWorld(t, seed, 4, 2)
		w.run(1500)
	}
}

// The same world drains to a quiet state: every effect completes, nothing
// is left running after a Shutdown, and no slot stays taken.
func TestShutdownDrainsEverything(t *testing.T) {
	for seed := range uint64(50) {
		w := newWorld(t, seed, 4, 2)
		w.run(500)
		for id := range w.orgs {
			w.feed(id, Shutdown{})
		}
		for len(w.pending) > 0 || len(w.launching) > 0 {
			if len(w.launching) > 0 && (len(w.pending) == 0 || w.r.IntN(2) == 0) {
				for id := range w.launching {
					w.finishLaunch(id)
					break
				}
				continue
			}
			w.complete()
		}
		for id, n := range w.procs {
			if n != 0 {
				t.Fatalf("seed %d: %s has %d processes after shutdown", seed, id, n)
			}
		}
		if liveSlots(w.q) != 0 {
			t.Fatalf("seed %d: %d slots still taken after shutdown", seed, liveSlots(w.q))
		}
	}
}

// liveSlots is the number of slots in use host-wide, as the metrics see it.
func liveSlots(q *queue.Queue) int {
	n := 0
	for _, on := range q.LiveByEgress() {
		n += on
	}
	return n
}
