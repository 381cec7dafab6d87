package fleet

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/backoff"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// envelope is one input on its way to a runner.
type envelope struct {
	in lifecycle.Input
	// reply, when set, receives the answer once the change is committed.
	reply chan reply
	// proc travels with lifecycle.Launched: the process the launch started.
	proc Worker
}

type reply struct {
	snap state.Snapshot
	err  error
}

// workerRef is the live worker as health checks and pairing see it.
type workerRef struct {
	proc Worker
	gen  int
}

// runner executes one organization's inputs one at a time, in order. It
// has no goroutine of its own while idle: post starts a drain when inputs
// arrive, so ten thousand quiet organizations cost no goroutines.
type runner struct {
	f  *Fleet
	id string
	// epoch tells this lifetime of the organization from an earlier one
	// (deleted, then registered again), whose late slot grants it refuses.
	epoch uint64
	// reserved: a registration holds a place under max_orgs; guarded by
	// the fleet's mu.
	reserved bool

	mu      sync.Mutex
	inbox   []envelope
	running bool
	retired bool

	// Owned by the drain.
	org    lifecycle.Org
	stored bool // state.db holds a row for it
	proc   Worker
	cancel context.CancelFunc // of the launch in flight
	timer  clock.Timer
	wakeAt time.Time
	// logoutWaiters are API calls waiting for the worker's logout.
	logoutWaiters []chan reply

	// Published for readers: the last committed state and the live worker.
	view   atomic.Pointer[lifecycle.Org]
	worker atomic.Pointer[workerRef]
}

func newRunner(f *Fleet, id string, o lifecycle.Org, stored bool) *runner {
	r := &runner{f: f, id: id, org: o, stored: stored, epoch: f.epochs.Add(1)}
	if stored {
		r.view.Store(&o)
	}
	return r
}

func (r *runner) registered() bool {
	v := r.view.Load()
	return v != nil && v.Registered()
}

// post queues an input; false if the runner has retired (the caller looks
// the organization up again).
func (r *runner) post(e envelope) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.retired {
		return false
	}
	r.inbox = append(r.inbox, e)
	if !r.running {
		r.running = true
		go r.drain()
	}
	return true
}

func (r *runner) drain() {
	for {
		r.mu.Lock()
		if len(r.inbox) == 0 {
			// Still the owner of the state here: read it before letting go.
			idle := r.idle()
			r.running = false
			r.mu.Unlock()
			if idle {
				r.f.retire(r)
			}
			return
		}
		e := r.inbox[0]
		r.inbox = r.inbox[1:]
		r.mu.Unlock()
		r.handle(e)
	}
}

// idle reports whether nothing is left of the organization: it is not
// registered, has no stored row and nothing in flight.
func (r *runner) idle() bool {
	o := &r.org
	return o.Deleted && !r.stored && o.Proc.Phase == lifecycle.ProcNone &&
		o.Slot.Phase == lifecycle.SlotNone && !o.Archiving && r.proc == nil
}

// retire marks the runner gone if its inbox is still empty and no drain
// runs (so the state may be read here); the caller holds the fleet's lock.
func (r *runner) retire() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running || len(r.inbox) > 0 || !r.idle() {
		return false
	}
	r.retired = true
	if r.timer != nil {
		r.timer.Stop()
	}
	return true
}

// handle is one transition: decide, commit, publish, act.
func (r *runner) handle(e envelope) {
	f := r.f
	_, isStart := e.in.(lifecycle.Start)
	if isStart {
		defer f.unreserve(r)
	}
	now := f.clock.Now()
	res := lifecycle.Step(r.org, e.in, now, f.policy)
	if res.Err != nil {
		if isStart {
			// Before the answer: a caller that starts the next
			// organization at once must not find this refused one still
			// counted under max_orgs. (Only a Start's own: another
			// input's refusal must not end the reservation of a Start
			// queued behind it.)
			f.unreserve(r)
		}
		answer(e.reply, r.snapshot(now), res.Err)
		return
	}
	picked := false
	if start, ok := e.in.(lifecycle.Start); ok && res.Org.Registered() && res.Org.Fingerprint == "" {
		// A registration that will commit: only now is a fingerprint
		// reserved, so that a start refused (max_orgs, a hold) takes
		// none. Step is pure, so deciding again with it is the same
		// decision with the fingerprint in.
		start.Fingerprint = r.pickFingerprint()
		picked = true
		res = lifecycle.Step(r.org, start, now, f.policy)
	}
	prev := r.org
	if !res.Org.Record.Equal(prev.Record) || (!r.stored && res.Org.Registered()) {
		var events []webhook.Event
		if f.webhooks {
			events = stepEvents(r.id, prev, res.Org, res.Effects, now)
		}
		if !r.commit(res.Org.Record, events, now) {
			if picked {
				// Never registered: the reservation goes back.
				f.fps.free(r.id)
			}
			if isStart {
				f.unreserve(r)
			}
			if e.proc != nil {
				// A launch whose outcome could not be saved during a
				// shutdown: nobody will close its worker otherwise.
				go func() { e.proc.Kill(); f.procs.add(-1) }()
			}
			answer(e.reply, state.Snapshot{}, ErrNotSaved)
			return
		}
		r.stored = true
	}
	r.org = res.Org
	if e.proc != nil {
		r.adopt(e)
	}
	r.publish(prev)
	for _, eff := range res.Effects {
		r.run(eff, now)
	}
	if _, tick := e.in.(lifecycle.Tick); tick {
		// The timer that fired is spent, even when the wall clock was set
		// back and WakeAt came out the same.
		r.wakeAt = time.Time{}
	}
	r.arm(now)
	if _, isLogout := e.in.(lifecycle.Logout); isLogout && e.reply != nil {
		r.logoutWaiters = append(r.logoutWaiters, e.reply)
		return
	}
	if done, ok := e.in.(lifecycle.LogoutDone); ok {
		r.answerLogout(done, now)
	}
	answer(e.reply, r.snapshot(now), nil)
}

// pickFingerprint reserves a fingerprint for the organization being
// registered.
func (r *runner) pickFingerprint() string {
	fp, full := r.f.fps.pick(r.id)
	if full {
		r.note(slog.LevelWarn, "every device fingerprint is taken; this organization shares one")
	}
	return fp
}

// commit saves rec, retrying while the store refuses: the old state stays
// visible meanwhile, /readyz fails and every failure is counted. It gives
// up only when the fleet shuts down: the change was never shown, and the
// next boot starts from what was saved.
func (r *runner) commit(rec lifecycle.Record, events []webhook.Event, at time.Time) bool {
	f := r.f
	failing := false
	defer func() {
		if failing {
			f.failing.Add(-1)
		}
	}()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := f.store.SaveOrg(ctx, rec, events, at)
		cancel()
		if err == nil {
			if failing {
				f.log.Info("state saved again", "org", r.id, "attempts", attempt)
			}
			return true
		}
		f.metrics.PersistError()
		if !failing {
			failing = true
			f.failing.Add(1)
		}
		wait := backoff.Delay(100*time.Millisecond, 5*time.Second, attempt)
		f.log.Error("saving the organization's state failed; the change stays invisible and is retried",
			"org", r.id, "err", err, "attempt", attempt, "retry_in", wait.String())
		select {
		case <-time.After(wait):
		case <-f.closing:
			return false
		}
	}
}

// adopt takes the process a launch produced, or kills it when the launch
// is not the current one (which the lifecycle never lets happen).
func (r *runner) adopt(e envelope) {
	l, ok := e.in.(lifecycle.Launched)
	if !ok || l.Gen != r.org.Proc.Gen || r.org.Proc.Phase == lifecycle.ProcNone {
		r.f.log.Error("a launch nobody waited for; killing its worker", "org", r.id)
		go func() { e.proc.Kill(); r.f.procs.add(-1) }()
		return
	}
	r.proc = e.proc
	r.worker.Store(&workerRef{proc: e.proc, gen: l.Gen})
	r.follow(l.Gen, e.proc)
}

// publish makes the committed state visible and reports a status change.
func (r *runner) publish(prev lifecycle.Org) {
	o := r.org
	wasRegistered := r.registered()
	r.view.Store(&o)
	f := r.f
	switch {
	case o.Deleted && !prev.Deleted:
		f.fps.free(r.id)
	case !o.Deleted:
		f.fps.use(r.id, o.Fingerprint)
	}
	if now := o.Registered(); now != wasRegistered {
		f.mu.Lock()
		if now {
			// The reservation becomes the registration in one step: a
			// Start answered before the deferred unreserve must not count
			// its organization twice under max_orgs.
			f.registered++
			if r.reserved {
				r.reserved = false
				f.registering--
			}
		} else {
			f.registered--
		}
		f.mu.Unlock()
	}
	if o.Status == prev.Status && o.Deleted == prev.Deleted {
		return
	}
	if !o.Deleted {
		f.metrics.SetStatus(r.id, o.Status)
	}
	if l := f.listener; l != nil {
		l.OrgStatus(r.id, o.Status == state.Connected && !o.Deleted, o.JID)
		if o.Deleted && !prev.Deleted {
			l.OrgDeleted(r.id)
		}
	}
	f.log.Info("status changed", "org", r.id, "from", string(prev.Status), "to", string(o.Status), "event", o.Reason)
}

// arm keeps one timer at the organization's WakeAt.
func (r *runner) arm(now time.Time) {
	at := r.org.WakeAt
	if at.Equal(r.wakeAt) {
		return
	}
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.wakeAt = at
	if at.IsZero() {
		return
	}
	r.timer = r.f.clock.AfterFunc(at.Sub(now), func() { r.post(envelope{in: lifecycle.Tick{}}) })
}

func (r *runner) snapshot(now time.Time) state.Snapshot {
	if v := r.view.Load(); v != nil && v.Registered() {
		return v.Snapshot(now, r.f.policy)
	}
	return state.Snapshot{}
}

func (r *runner) answerLogout(done lifecycle.LogoutDone, now time.Time) {
	var err error
	if done.Err != "" {
		err = &lifecycle.ConflictError{Org: r.id, Msg: "logout: " + done.Err}
	}
	for _, w := range r.logoutWaiters {
		answer(w, r.snapshot(now), err)
	}
	r.logoutWaiters = nil
}

func answer(ch chan reply, snap state.Snapshot, err error) {
	if ch != nil {
		ch <- reply{snap: snap, err: err}
	}
}

func (r *runner) note(level slog.Level, msg string, attrs ...any) {
	r.f.log.Log(context.Background(), level, msg, append([]any{"org", r.id}, attrs...)...)
}
