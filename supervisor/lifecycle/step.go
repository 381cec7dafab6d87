package lifecycle

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/backoff"
)

// Result is what one step decided.
type Result struct {
	Org     Org
	Effects []Effect
	// Err refuses an operator input (unknown organization, a hold, a
	// conflict); the organization is then returned unchanged, without effects.
	Err error
}

// Step applies one input at now: it updates the facts, then reconciles what
// should be (a worker or none, a slot, an archive) with what is, and derives
// the status. It never changes o's slices in place.
func Step(o Org, in Input, now time.Time, p Policy) Result {
	s := &step{o: o, now: now, p: p, prev: o.Status}
	if err := s.apply(in); err != nil {
		return Result{Org: o, Err: err}
	}
	s.reconcile()
	s.derive()
	return Result{Org: s.o, Effects: s.effs}
}

type step struct {
	o    Org
	now  time.Time
	p    Policy
	prev state.Status
	// ev names what happened, for Reason and LastEvent.
	ev   string
	effs []Effect
}

func (s *step) emit(e Effect) { s.effs = append(s.effs, e) }

func (s *step) note(level slog.Level, msg string, attrs ...any) {
	s.emit(Note{Level: level, Msg: msg, Attrs: attrs})
}

func (s *step) count(m Metric, label string) { s.emit(Count{Metric: m, Label: label}) }

func (s *step) apply(in Input) error {
	switch in := in.(type) {
	case Restore:
		s.restore(in)
	case Start:
		return s.start(in)
	case Stop:
		return s.stop()
	case Clear:
		return s.clear()
	case Delete:
		return s.delete()
	case Logout:
		return s.logout()
	case Shutdown:
		s.o.ShuttingDown = true
	case Tick:
		s.ev = "wait_over"
	case SlotGranted:
		s.granted(in)
	case EgressResolved:
		s.resolved(in)
	case Launched:
		s.launched(in)
	case LaunchFailed:
		s.launchFailed(in)
	case Reaped:
		s.reaped(in)
	case StreamEnded:
		if s.live(in.Gen) {
			s.crash("crash", "worker exited unexpectedly", in.Err)
		}
	case Unhealthy:
		if s.live(in.Gen) {
			s.crash("unhealthy", "worker unresponsive", "health check: "+in.Err)
		}
	case LogoutDone:
		if in.Gen == s.o.Proc.Gen && in.Err == "" {
			s.loggedOut("manual")
		}
	case Archived:
		s.archived(in)
	case ArchiveFailed:
		s.archiveFailed(in)
	case PairingCode:
		if s.live(in.Gen) {
			s.o.PairingCode = in.Code
			s.ev = "pairing_code"
		}
	default:
		s.workerEvent(in)
	}
	return nil
}

// live reports whether gen is the running worker: the one whose session
// events still describe the organization.
func (s *step) live(gen int) bool {
	return gen == s.o.Proc.Gen && s.o.Proc.Phase == ProcRunning
}

// ours reports whether gen is the current worker, running or closing: a
// closing worker's LOGOUT or ban is still a fact about the account.
func (s *step) ours(gen int) bool {
	return gen == s.o.Proc.Gen && (s.o.Proc.Phase == ProcRunning || s.o.Proc.Phase == ProcClosing)
}

// ReasonBinaryChanged is the reason of an organization that failed only
// because the worker binary changed under the supervisor.
const ReasonBinaryChanged = "binary_changed"

func (s *step) restore(in Restore) {
	if s.o.Fingerprint == "" {
		s.o.Fingerprint = in.Fingerprint
	}
	if in.Proxy != nil {
		s.o.Proxy = *in.Proxy
	}
	if s.o.Status == state.Failed && s.o.Reason == ReasonBinaryChanged {
		// The restart that message asked for: it runs again.
		s.o.Run = true
	}
	s.ev = "restored"
}

func (s *step) held() error {
	if h := s.o.Hold; h.Active(s.now) {
		return &HoldError{Org: s.o.ID, Until: h.Until, Why: h.describe()}
	}
	return nil
}

func (s *step) start(in Start) error {
	if err := s.held(); err != nil {
		return err
	}
	o := &s.o
	if o.Deleted {
		// A tombstone keeps its holds and Bad MAC history, and an archive
		// still pending runs before the first launch.
		o.Record = Record{
			ID: o.ID, Status: state.Stopped, Hold: o.Hold, BadMAC: o.BadMAC,
			ArchivePending: o.ArchivePending, Fingerprint: in.Fingerprint,
			FromConfig: in.FromConfig, AddedAt: s.now,
		}
		if in.Proxy != nil {
			o.Proxy = *in.Proxy
		}
		o.Purged = false
		s.note(slog.LevelInfo, "organization registered")
	}
	if o.Fingerprint == "" {
		o.Fingerprint = in.Fingerprint
	}
	if in.Proxy != nil && *in.Proxy != o.Proxy {
		o.Proxy = *in.Proxy
		switch o.Slot.Phase {
		case SlotWaiting:
			// Not admitted yet: it queues again on the new egress.
			s.release()
		case SlotResolving:
			// The answer for the old proxy is ignored (its N is spent).
			o.Slot = Slot{N: o.Slot.N}
		}
	}
	if o.Run && !in.Force {
		return nil
	}
	if o.Run && (o.Proc.Phase == ProcLaunching || o.Proc.Phase == ProcRunning) {
		o.Restart = true
	}
	o.Run = true
	o.Crashes = 0
	o.RetryAt = time.Time{}
	s.ev = "start"
	return nil
}

func (s *step) known() error {
	if s.o.Deleted {
		return fmt.Errorf("organization %s: %w", s.o.ID, ErrUnknownOrg)
	}
	return nil
}

func (s *step) stop() error {
	if err := s.known(); err != nil {
		return err
	}
	o := &s.o
	s.ev = "operator"
	if !o.Run {
		// A held or given-up organization keeps its status: a logged_out
		// one stopped is still logged_out.
		return nil
	}
	o.Run, o.Restart = false, false
	o.Status = state.Stopped
	if o.Hold.Active(s.now) && o.Hold.Reason == HoldBan {
		o.Status = state.Banned
	}
	return nil
}

func (s *step) clear() error {
	if err := s.known(); err != nil {
		return err
	}
	if err := s.held(); err != nil {
		return err
	}
	counter, wait := s.p.BadMAC.Trip(s.o.BadMAC, s.now)
	s.o.BadMAC = counter
	s.count(MetricSessionCleared, "manual")
	s.note(slog.LevelWarn, "session cleared by an operator: archiving and relinking", "relink_in", wait.String())
	s.trip(HoldManual, wait, true)
	return nil
}

func (s *step) delete() error {
	if err := s.known(); err != nil {
		return err
	}
	o := &s.o
	o.Deleted = true
	o.Run, o.Restart = false, false
	o.Status = state.Stopped
	o.Linked, o.JID = false, ""
	if o.ArchivePending == "" {
		o.ArchivePending = ArchiveDeleted
	}
	s.ev = "deleted"
	s.emit(ForgetMetrics{})
	s.note(slog.LevelInfo, "organization deleted; its auth directory is archived, its holds kept until they expire")
	return nil
}

func (s *step) logout() error {
	if err := s.known(); err != nil {
		return err
	}
	if s.o.Proc.Phase != ProcRunning || !s.o.Linked {
		return &ConflictError{Org: s.o.ID, Msg: "no linked session is running; start it first"}
	}
	s.emit(LogoutWorker{Gen: s.o.Proc.Gen})
	return nil
}

func (s *step) granted(in SlotGranted) {
	o := &s.o
	if o.Slot.Phase == SlotWaiting && o.Slot.N == in.N {
		o.Slot.Phase = SlotHeld
		return
	}
	if o.Slot.Phase == SlotHeld && o.Slot.N == in.N {
		// A second grant of the slot already held: giving it "back" would
		// free a slot whose worker runs.
		return
	}
	// The request was withdrawn meanwhile: give the slot straight back.
	s.emit(ReleaseSlot{N: in.N, Egress: in.Egress})
}

// resolved puts request N in the queue on its egress key, or ends the
// start when the proxy's host does not resolve: no worker is launched on
// an egress nobody can count. A name that does not exist fails the
// organization with the reason shown; a lookup that timed out is tried
// again after the first crash backoff, without counting as a crash.
func (s *step) resolved(in EgressResolved) {
	o := &s.o
	if o.Slot.Phase != SlotResolving || o.Slot.N != in.N {
		return // a request withdrawn meanwhile
	}
	if in.Err == "" {
		o.Slot.Phase, o.Slot.Egress = SlotWaiting, in.Egress
		s.emit(RequestSlot{N: in.N, Egress: in.Egress})
		return
	}
	o.Slot = Slot{N: o.Slot.N}
	o.LastError = in.Err
	s.ev = ReasonProxyUnresolved
	if in.Temporary {
		o.RetryAt = s.now.Add(s.p.CrashBackoff[0])
		s.note(slog.LevelWarn, "the proxy's host could not be looked up; trying again", "in", s.p.CrashBackoff[0].String(), "err", in.Err)
		return
	}
	if o.Run {
		o.Run = false
		o.Status = state.Failed
	}
	s.note(slog.LevelError, "the proxy's host does not resolve; the organization waits for an operator to fix its proxy and start it", "err", in.Err)
}

// ReasonProxyUnresolved is the reason of an organization whose proxy's
// host name did not resolve.
const ReasonProxyUnresolved = "proxy_unresolved"

func (s *step) launched(in Launched) {
	o := &s.o
	if in.Gen != o.Proc.Gen || o.Proc.Phase != ProcLaunching {
		return
	}
	o.Proc.Phase, o.Proc.PID, o.Proc.Sandbox = ProcRunning, in.PID, in.Sandbox
	if o.Proc.Cancelled && o.wantsWorker(s.now) {
		// Stopped and started again while it launched: this worker is
		// the one wanted now.
		o.Proc.Cancelled = false
	}
	s.emit(LaunchDone{N: o.Slot.N, Egress: o.Slot.egress()})
	s.ev = "started"
	switch {
	case in.DeviceMissing:
		s.deviceMissing()
	case in.Restoring:
		o.Linked = true
		o.Session = state.Restoring
	case o.Linked:
		// A worker that was not told to restore (an older one) and found
		// no device: the same lost LOGOUT.
		s.deviceMissing()
	default:
		o.Session = state.Starting
	}
}

// deviceMissing applies a LOGOUT that the store shows and the record never
// got: whatsmeow deletes the device on a LOGOUT, so a restore that finds
// none means that LOGOUT's commit was lost (a full disk, a crash). The
// cooldown counts from now, when the supervisor learns of it. It applies
// even when the record stopped saying Linked while the launch ran (a clear,
// a delete): the account was logged out all the same, and a relink before
// the cooldown is what WhatsApp punishes.
func (s *step) deviceMissing() {
	s.note(slog.LevelWarn, "the auth store no longer holds the linked device; treating it as a LOGOUT")
	if s.o.Deleted {
		// The tombstone keeps the hold for a later registration of the
		// same id; its status and metrics are gone with the organization.
		s.o.Hold = s.o.Hold.extend(s.now.Add(s.p.LogoutCooldown), HoldLogout)
		s.ev = "device_missing"
		return
	}
	s.loggedOut("device_missing")
}

func (s *step) launchFailed(in LaunchFailed) {
	o := &s.o
	if in.Gen != o.Proc.Gen || o.Proc.Phase != ProcLaunching {
		return
	}
	cancelled := in.Cancelled || o.Proc.Cancelled
	o.Proc = Proc{Gen: o.Proc.Gen}
	s.emit(LaunchDone{N: o.Slot.N, Egress: o.Slot.egress()})
	switch {
	case cancelled:
	case in.BinaryChanged:
		// Not the organization's fault, and nothing to retry until the
		// supervisor restarts; Restore then starts it again.
		o.LastError = in.Err
		if o.Run {
			o.Run = false
			o.Status = state.Failed
		}
		s.note(slog.LevelError, "the worker binary changed since the supervisor started; restart the supervisor (this organization then resumes by itself)", "err", in.Err)
		s.ev = ReasonBinaryChanged
	default:
		s.crash("start_failed", "worker start failed", in.Err)
	}
}

func (s *step) reaped(in Reaped) {
	o := &s.o
	if in.Gen != o.Proc.Gen || o.Proc.Phase == ProcNone || o.Proc.Phase == ProcLaunching {
		return
	}
	o.Proc = Proc{Gen: o.Proc.Gen}
	o.Session = ""
	o.QR, o.PairingCode, o.ConnectedSince = QR{}, "", time.Time{}
	s.note(slog.LevelInfo, "worker exited")
}

// crash handles a worker that failed: restart on the same auth after a
// backoff, or give up at crash_limit.
func (s *step) crash(reason, msg, detail string) {
	o := &s.o
	o.Proc.Crashed = true
	if detail != "" {
		o.LastError = detail
	}
	if !o.Run {
		return
	}
	if !o.ConnectedSince.IsZero() && s.now.Sub(o.ConnectedSince) >= s.p.StableConnection {
		o.Crashes = 0
	}
	o.Crashes++
	s.count(MetricWorkerRestart, reason)
	s.ev = reason
	if o.Crashes >= s.p.CrashLimit {
		o.Run = false
		o.Status = state.Failed
		s.note(slog.LevelError, msg+"; it keeps failing, so it is given up until an operator starts it",
			"crashes", o.Crashes, "err", detail)
		return
	}
	delay := backoff.Delay(s.p.CrashBackoff[0], s.p.CrashBackoff[1], o.Crashes)
	o.RetryAt = s.now.Add(delay)
	s.note(slog.LevelWarn, msg+"; restarting after a backoff", "attempt", o.Crashes, "in", delay.String(), "err", detail)
}

// trip archives the session and holds the relink for wait: a Bad MAC trip
// or a manual clear. relink makes the organization run again afterwards.
func (s *step) trip(reason string, wait time.Duration, relink bool) {
	o := &s.o
	if len(o.BadMAC.Trips) >= s.p.BadMAC.StormTrips {
		reason = HoldStorm
	}
	o.Linked, o.JID = false, ""
	if o.ArchivePending == "" {
		o.ArchivePending = ArchiveCorrupted
	}
	o.Hold = o.Hold.extend(s.now.Add(wait), reason)
	o.Crashes, o.RetryAt, o.Restart = 0, time.Time{}, false
	o.Run = o.Run || relink
	s.ev = "session_cleared"
}

// loggedOut applies WhatsApp's LOGOUT (or an operator's): no restart, a
// cooldown before any relink, and the dead store archived.
func (s *step) loggedOut(reason string) {
	o := &s.o
	o.Run, o.Restart = false, false
	o.Status = state.LoggedOut
	o.Linked, o.JID = false, ""
	o.Hold = o.Hold.extend(s.now.Add(s.p.LogoutCooldown), HoldLogout)
	if o.ArchivePending == "" {
		o.ArchivePending = ArchiveLoggedOut
	}
	s.count(MetricLogout, reason)
	s.note(slog.LevelWarn, "logged out; no automatic restart", "reason", reason,
		"cooldown_until", o.Hold.Until.UTC().Format(time.RFC3339))
	s.ev = reason
}

func (s *step) archived(in Archived) {
	o := &s.o
	o.Archiving = false
	if o.ArchivePending == in.Reason {
		o.ArchivePending = ""
	}
	o.ArchiveFailures, o.ArchiveRetryAt = 0, time.Time{}
	if in.Path != "" {
		s.note(slog.LevelInfo, "auth directory archived", "archive", filepath.Base(in.Path))
	}
}

func (s *step) archiveFailed(in ArchiveFailed) {
	o := &s.o
	o.Archiving = false
	o.ArchiveFailures++
	wait := backoff.Delay(s.p.ArchiveRetry[0], s.p.ArchiveRetry[1], o.ArchiveFailures)
	o.ArchiveRetryAt = s.now.Add(wait)
	o.LastError = "archive auth directory: " + in.Err
	s.note(slog.LevelError, "archiving the auth directory failed; no worker starts on it until it succeeds",
		"err", in.Err, "retry_in", wait.String(), "attempt", o.ArchiveFailures)
}
