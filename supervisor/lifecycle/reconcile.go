package lifecycle

import (
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// wantsWorker reports whether a worker should run now. Every reason not to
// is a rule: a hold, an auth directory still to be archived, a crash
// backoff, a restart that must close the old worker first.
func (o *Org) wantsWorker(now time.Time) bool {
	return o.Run && !o.Deleted && !o.ShuttingDown && !o.Restart &&
		!o.Hold.Active(now) && o.ArchivePending == "" && !o.RetryAt.After(now)
}

// reconcile moves what is toward what should be, one safe step at a time:
// close → archive → launch. A launch needs no process, no archive pending and
// a held slot; an archive needs no process; a slot is given back only once
// its process is gone.
func (s *step) reconcile() {
	o, now := &s.o, s.now
	want := o.wantsWorker(now)
	switch o.Proc.Phase {
	case ProcRunning:
		if !want || o.Restart {
			o.Proc.Phase = ProcClosing
			s.emit(Close{Gen: o.Proc.Gen, Graceful: !o.Proc.Crashed})
		}
	case ProcLaunching:
		if (!want || o.Restart) && !o.Proc.Cancelled {
			o.Proc.Cancelled = true
			s.emit(CancelLaunch{Gen: o.Proc.Gen})
		}
	}
	noProc := o.Proc.Phase == ProcNone
	if noProc {
		o.Restart = false
	}
	if noProc && o.Slot.Phase == SlotHeld && o.Slot.Used {
		s.release()
	}
	if noProc && o.ArchivePending != "" && !o.Archiving && !o.ArchiveRetryAt.After(now) {
		o.Archiving = true
		s.emit(Archive{Reason: o.ArchivePending})
	}

	want = o.wantsWorker(now)
	switch o.Slot.Phase {
	case SlotNone:
		if want && noProc {
			n := o.Slot.N + 1
			if key, ok := proxy.Literal(o.Proxy); ok {
				o.Slot = Slot{Phase: SlotWaiting, N: n, Proxy: o.Proxy, Egress: key}
				s.emit(RequestSlot{N: n, Egress: key})
			} else {
				// A host name: its address is the egress, and looking it
				// up is I/O, so the fleet answers with EgressResolved.
				o.Slot = Slot{Phase: SlotResolving, N: n, Proxy: o.Proxy}
				s.emit(ResolveEgress{N: n, Proxy: o.Proxy})
			}
		}
	case SlotResolving:
		if !want {
			// Nothing was queued yet; the late answer finds N spent.
			o.Slot = Slot{N: o.Slot.N}
		}
	case SlotWaiting:
		if !want {
			s.release()
		}
	case SlotHeld:
		if noProc && want {
			o.Proc = Proc{Phase: ProcLaunching, Gen: o.Proc.Gen + 1}
			o.Slot.Used = true
			o.Session = state.Starting
			if o.Linked {
				o.Session = state.Restoring
			}
			s.emit(Launch{Gen: o.Proc.Gen, Restoring: o.Linked, Proxy: o.Slot.Proxy})
			if s.ev == "" {
				s.ev = "spawn"
			}
		} else if noProc {
			s.release()
		}
	}

	if o.Deleted && !o.Purged && noProc && o.ArchivePending == "" && !o.Archiving &&
		o.Slot.Phase == SlotNone && !o.remembers(now, s.p) {
		o.Purged = true
		s.emit(Purge{})
	}
	o.WakeAt = s.wakeAt()
}

func (s *step) release() {
	s.emit(ReleaseSlot{N: s.o.Slot.N, Egress: s.o.Slot.egress()})
	s.o.Slot = Slot{N: s.o.Slot.N}
}

// remembers reports whether a tombstone still has something to keep: a hold
// or a storm history that a new registration of the same ID must meet.
func (o *Org) remembers(now time.Time, p Policy) bool {
	return o.Hold.Active(now) || p.BadMAC.StormEnds(o.BadMAC).After(now)
}

// wakeAt is the earliest future instant at which time alone changes what
// reconcile decides.
func (s *step) wakeAt() time.Time {
	o, now := &s.o, s.now
	var at time.Time
	consider := func(t time.Time) {
		if t.After(now) && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	consider(o.Hold.Until)
	consider(o.RetryAt)
	consider(o.ArchiveRetryAt)
	if o.Deleted && !o.Purged {
		consider(s.p.BadMAC.StormEnds(o.BadMAC))
	}
	return at
}

// derive sets the status from the facts. While Run is false the idle status
// stands as set; otherwise the live worker's session shows, or why there is
// none (a hold, or waiting in the queue).
func (s *step) derive() {
	o := &s.o
	if s.ev != "" {
		o.LastEvent = s.ev
	}
	if o.ShuttingDown {
		// Frozen: the next boot restores from what was last committed.
		return
	}
	st := o.Status
	switch {
	case o.Deleted:
	case !o.Run:
		if !idle(st) {
			st = state.Stopped
		}
	case (o.Proc.Phase == ProcLaunching || o.Proc.Phase == ProcRunning) && !o.Proc.Cancelled && o.Session != "":
		st = o.Session
	case o.Hold.Active(s.now) && o.Hold.Reason == HoldBan:
		st = state.Banned
	case o.Hold.Active(s.now):
		st = state.Cooldown
	default:
		st = state.Queued
	}
	o.Status = st
	if st != s.prev && s.ev != "" {
		o.Reason = s.ev
	}
}
