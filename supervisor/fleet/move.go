package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

// What a move to another node needs of the fleet (package move drives
// it): on the source, stop an organization and keep it from starting
// while its state is carried away (StopForMove), then either give it back
// (Unfence, and a start if it ran) or let it go (Evict); on the target,
// take an imported organization in (Adopt).

// quietPoll is how often StopForMove and Evict look whether the runner has
// settled; a move is rare, and the stop itself takes far longer.
const quietPoll = 20 * time.Millisecond

// fenced refuses every input but a stop for an organization being moved;
// the caller holds f.mu.
func (f *Fleet) fenced(id string, in lifecycle.Input) error {
	if !f.moving[id] {
		return nil
	}
	if _, stop := in.(lifecycle.Stop); stop {
		return nil
	}
	return &lifecycle.ConflictError{Org: id, Msg: "the organization is being moved to another node; try again when the move is over"}
}

// StopForMove fences id (only a stop reaches it until Unfence or Evict),
// stops it and waits until its worker process is gone, no slot is held
// and no archive runs: its auth directory is then still. It reports
// whether the organization ran before (wanted a worker), also with an
// error, so that a failed move can start it again.
func (f *Fleet) StopForMove(ctx context.Context, id string) (wasRunning bool, err error) {
	if err := orgid.Validate(id); err != nil {
		return false, err
	}
	f.mu.Lock()
	r := f.orgs[id]
	switch {
	case r == nil || !r.registered():
		f.mu.Unlock()
		return false, unknown(id)
	case f.moving[id]:
		f.mu.Unlock()
		return false, &lifecycle.ConflictError{Org: id, Msg: "a move of the organization is already under way"}
	}
	f.moving[id] = true
	f.mu.Unlock()
	wasRunning = r.view.Load().Run
	if _, err := f.Stop(ctx, id); err != nil {
		return wasRunning, fmt.Errorf("stop %s for the move: %w", id, err)
	}
	return wasRunning, f.waitQuiet(ctx, r, func() bool { return true })
}

// waitQuiet polls until r has no process, slot or archive in flight and
// extra holds.
func (f *Fleet) waitQuiet(ctx context.Context, r *runner, extra func() bool) error {
	t := time.NewTicker(quietPoll)
	defer t.Stop()
	for {
		v := r.view.Load()
		if v != nil && v.Proc.Phase == lifecycle.ProcNone && v.Slot.Phase == lifecycle.SlotNone && !v.Archiving &&
			r.worker.Load() == nil && extra() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("organization %s: its worker did not stop in time: %w", r.id, ctx.Err())
		case <-t.C:
		}
	}
}

// Unfence lets id take every input again: a move that failed gives the
// organization back (the caller starts it if it ran).
func (f *Fleet) Unfence(id string) {
	f.mu.Lock()
	delete(f.moving, id)
	f.mu.Unlock()
}

// Evict drops the fenced organization id from this node once its rows are
// gone from the store: no tombstone (its holds went with it to the
// target), no metrics, no fingerprint. The runner must be idle.
func (f *Fleet) Evict(ctx context.Context, id string) error {
	f.mu.RLock()
	r, moving := f.orgs[id], f.moving[id]
	f.mu.RUnlock()
	if !moving {
		return fmt.Errorf("evict %s: no move of it is under way", id)
	}
	if r == nil {
		f.Unfence(id)
		return nil
	}
	idle := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.running && len(r.inbox) == 0
	}
	if err := f.waitQuiet(ctx, r, idle); err != nil {
		return fmt.Errorf("evict %s: %w", id, err)
	}
	f.mu.Lock()
	r.mu.Lock()
	if r.running || len(r.inbox) > 0 {
		// An input arrived between the wait and the lock (a worker
		// event cannot: there is none); the next try takes it.
		r.mu.Unlock()
		f.mu.Unlock()
		return fmt.Errorf("evict %s: the organization is busy; try again", id)
	}
	r.retired = true
	if r.timer != nil {
		r.timer.Stop()
	}
	wasRegistered := r.org.Registered()
	r.mu.Unlock()
	if f.orgs[id] == r {
		delete(f.orgs, id)
	}
	if wasRegistered {
		f.registered--
	}
	delete(f.moving, id)
	f.mu.Unlock()
	f.fps.free(id)
	f.metrics.Forget(id)
	if l := f.listener; l != nil {
		l.OrgStatus(id, false, "")
		l.OrgDeleted(id)
	}
	f.log.Info("organization moved away from this node", "org", id)
	return nil
}

// Adopt takes in an organization that a move imported into the store
// (rec as committed there, Run as the source had it): a runner restores
// it as a boot would, which queues its worker when it should run. An
// organization this node knows as registered is refused; a tombstone of
// it gives way (its holds were merged by the import).
func (f *Fleet) Adopt(ctx context.Context, rec lifecycle.Record) (state.Snapshot, error) {
	if err := orgid.Validate(rec.ID); err != nil {
		return state.Snapshot{}, err
	}
	if !f.ready.Load() {
		return state.Snapshot{}, ErrBooting
	}
	id := rec.ID
	f.mu.Lock()
	if f.shutdown {
		f.mu.Unlock()
		return state.Snapshot{}, &lifecycle.ConflictError{Org: id, Msg: "the supervisor is shutting down"}
	}
	if old := f.orgs[id]; old != nil {
		old.mu.Lock()
		busy := old.running || len(old.inbox) > 0 || old.reserved || old.org.Registered() ||
			old.org.Proc.Phase != lifecycle.ProcNone || old.org.Slot.Phase != lifecycle.SlotNone || old.org.Archiving
		if !busy {
			old.retired = true
			if old.timer != nil {
				old.timer.Stop()
			}
		}
		old.mu.Unlock()
		if busy {
			f.mu.Unlock()
			return state.Snapshot{}, &lifecycle.ConflictError{Org: id, Msg: "this node already has the organization"}
		}
		delete(f.orgs, id)
	}
	if f.registered >= f.cfg.Workers.MaxOrgs {
		f.mu.Unlock()
		return state.Snapshot{}, fmt.Errorf("organization %s: %d organizations are registered: %w", id, f.registered, ErrTooManyOrgs)
	}
	if rec.Fingerprint != "" {
		// A linked device keeps the fingerprint it was registered with,
		// even if an organization here has the same one.
		f.fps.use(id, rec.Fingerprint)
	}
	r := newRunner(f, id, lifecycle.FromRecord(rec), true)
	f.orgs[id] = r
	f.registered++
	f.mu.Unlock()
	f.metrics.SetStatus(id, rec.Status)
	var in lifecycle.Restore
	if rec.Fingerprint == "" {
		in.Fingerprint = f.fingerprintFor(rec)
	}
	if c, ok := f.configOrg(id); ok {
		in.Proxy = &c.Proxy
	}
	answer := make(chan reply, 1)
	if !r.post(envelope{in: in, reply: answer}) {
		return state.Snapshot{}, fmt.Errorf("adopt %s: the runner retired", id)
	}
	select {
	case rep := <-answer:
		return f.decorated(rep.snap, rep.err)
	case <-ctx.Done():
		return state.Snapshot{}, ctx.Err()
	}
}
