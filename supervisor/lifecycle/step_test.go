package lifecycle

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// Every rule of the lifecycle, one scenario each, driven by inputs and a
// hand-moved clock.
var rules = []struct {
	name string
	run  func(s *sc)
}{
	// Queue and stagger: a start asks for a slot, launches only once the
	// queue grants it, and gives the slot back only once the worker is reaped.
	{"start queues, grant launches", func(s *sc) {
		s.ok(Start{Fingerprint: "fp"}).status(state.Queued).emitted(RequestSlot{N: 1, Egress: "direct"})
		if !s.o.Run || s.o.Deleted || s.o.Fingerprint != "fp" || !s.o.AddedAt.Equal(t0) {
			s.t.Fatalf("record after start: %+v", s.o.Record)
		}
		s.ok(SlotGranted{N: 1, Egress: "direct"}).status(state.Starting).emitted(Launch{Gen: 1})
		s.ok(Launched{Gen: 1, PID: 7, Sandbox: "landlock abi 7: fs, net"}).status(state.Starting).emitted(LaunchDone{N: 1, Egress: "direct"})
		s.ok(QRShown{Gen: 1, Code: "2@a", PNG: "png"}).status(state.QRRequired).emitted(Count{Metric: MetricQRCode})
		snap := s.o.Snapshot(s.now, s.p)
		if snap.QRCode != "2@a" || snap.QR != "png" || snap.WorkerPID != 7 || snap.Sandbox != "landlock abi 7: fs, net" {
			s.t.Fatalf("snapshot %+v", snap)
		}
	}},
	{"the sandbox shown is the running worker's", func(s *sc) {
		s.ok(Start{}).ok(SlotGranted{N: 1, Egress: "direct"}).ok(Launched{Gen: 1, PID: 7, Sandbox: "off"})
		if got := s.o.Snapshot(s.now, s.p).Sandbox; got != "off" {
			s.t.Fatalf("sandbox %q while running", got)
		}
		s.ok(Stop{}).ok(Reaped{Gen: 1})
		if got := s.o.Snapshot(s.now, s.p).Sandbox; got != "" {
			s.t.Fatalf("sandbox %q kept after the worker was reaped", got)
		}
	}},
	{"second start is a no-op", func(s *sc) {
		s.ok(Start{}).ok(Start{}).emitted().status(state.Queued)
		s.ok(SlotGranted{N: 1, Egress: "direct"}).ok(Start{}).emitted().status(state.Starting)
	}},
	{"stop during launch cancels it and frees the slot only when no process is left", func(s *sc) {
		s.ok(Start{}).ok(SlotGranted{N: 1, Egress: "direct"})
		s.ok(Stop{}).status(state.Stopped).emitted(CancelLaunch{Gen: 1})
		s.ok(Start{}).emitted().status(state.Queued)
		// Still launching: no new slot, no second launch.
		if s.o.Proc.Phase != ProcLaunching {
			s.t.Fatalf("proc %+v", s.o.Proc)
		}
		s.ok(LaunchFailed{Gen: 1, Cancelled: true}).emitted(LaunchDone{N: 1, Egress: "direct"}, ReleaseSlot{N: 1, Egress: "direct"}, RequestSlot{N: 2, Egress: "direct"})
	}},
	{"a launch that succeeds after its cancel is closed", func(s *sc) {
		s.ok(Start{}).ok(SlotGranted{N: 1, Egress: "direct"}).ok(Stop{}).emitted(CancelLaunch{Gen: 1})
		s.ok(Launched{Gen: 1, PID: 9}).emitted(LaunchDone{N: 1, Egress: "direct"}, Close{Gen: 1, Graceful: true}).status(state.Stopped)
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"})
	}},
	{"a stale grant is given back", func(s *sc) {
		s.ok(Start{}).ok(Stop{}).emitted(ReleaseSlot{N: 1, Egress: "direct"})
		s.ok(SlotGranted{N: 1, Egress: "direct"}).emitted(ReleaseSlot{N: 1, Egress: "direct"}).status(state.Stopped)
	}},
	{"stop keeps the slot until the worker is reaped", func(s *sc) {
		s.connected().ok(Stop{}).status(state.Stopped).emitted(Close{Gen: 1, Graceful: true})
		if s.o.Slot.Phase != SlotHeld || s.o.Run {
			s.t.Fatalf("slot %+v run %v", s.o.Slot, s.o.Run)
		}
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"})
		if s.o.Proc.PID != 0 || s.o.Snapshot(s.now, s.p).WorkerPID != 0 {
			s.t.Fatalf("pid kept after reap: %+v", s.o.Proc)
		}
	}},
	{"force restarts a live worker through the queue", func(s *sc) {
		s.connected().ok(Start{Force: true}).emitted(Close{Gen: 1, Graceful: true}).status(state.Queued)
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"}, RequestSlot{N: 2, Egress: "direct"})
		s.ok(SlotGranted{N: 2, Egress: "direct"}).emitted(Launch{Gen: 2, Restoring: true}).status(state.Restoring)
	}},
	{"events of an older worker are ignored", func(s *sc) {
		s.connected().ok(Start{Force: true}).ok(Reaped{Gen: 1}).ok(SlotGranted{N: 2, Egress: "direct"}).ok(Launched{Gen: 2, Restoring: true})
		s.ok(LoggedOut{Gen: 1}).emitted().status(state.Restoring)
		s.ok(StreamEnded{Gen: 1}).emitted()
	}},

	// LOGOUT: no restart, a cooldown, the store archived after the worker is gone.
	{"logout holds, archives, never restarts by itself", func(s *sc) {
		s.connected().after(time.Minute)
		s.ok(LoggedOut{Gen: 1, Reason: "device_removed"}).status(state.LoggedOut).
			emitted(Count{Metric: MetricLogout, Label: "device_removed"}, Close{Gen: 1, Graceful: true})
		if s.o.Linked || s.o.JID != "" || s.o.ArchivePending != ArchiveLoggedOut || s.o.Reason != "device_removed" {
			s.t.Fatalf("record %+v", s.o.Record)
		}
		until := s.now.Add(5 * time.Minute)
		if !s.o.Hold.Until.Equal(until) || s.o.Hold.Reason != HoldLogout || !s.o.WakeAt.Equal(until) {
			s.t.Fatalf("hold %+v wake %v", s.o.Hold, s.o.WakeAt)
		}
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"}, Archive{Reason: ArchiveLoggedOut})
		s.ok(Archived{Reason: ArchiveLoggedOut, Path: "/x/2_loggedout_1"}).emitted()
		s.after(time.Minute).do(Start{})
		if he := s.held(); !he.Until.Equal(until) || he.Why != "a logout" {
			s.t.Fatalf("hold error %+v", he)
		}
		s.after(4 * time.Minute).ok(Tick{}).emitted().status(state.LoggedOut)
		if s.o.Snapshot(s.now, s.p).CooldownUntil != nil {
			s.t.Fatal("cooldown_until shown after the cooldown")
		}
		s.ok(Start{}).emitted(RequestSlot{N: 2, Egress: "direct"}).status(state.Queued)
	}},
	{"operator logout goes through the worker", func(s *sc) {
		s.ok(Start{}).do(Logout{})
		var ce *ConflictError
		if !errors.As(s.err, &ce) {
			s.t.Fatalf("logout without a linked worker: %v", s.err)
		}
		s.ok(Stop{}).connected()
		s.ok(Logout{}).emitted(LogoutWorker{Gen: s.gen()}).status(state.Connected)
		s.ok(LogoutDone{Gen: s.gen(), Err: "timeout"}).emitted().status(state.Connected)
		s.ok(LogoutDone{Gen: s.gen()}).status(state.LoggedOut).has(Count{Metric: MetricLogout, Label: "manual"})
	}},
	{"a linked store that lost its device is a LOGOUT", func(s *sc) {
		s.connected().ok(Stop{}).ok(Reaped{Gen: 1}).ok(Start{}).ok(SlotGranted{N: 2, Egress: "direct"})
		s.ok(Launched{Gen: 2, Restoring: false}).status(state.LoggedOut).
			has(Count{Metric: MetricLogout, Label: "device_missing"}).has(Close{Gen: 2, Graceful: true})
		if !s.o.Hold.Active(s.now) {
			s.t.Fatal("no cooldown")
		}
	}},
	{"stop of a held organization keeps its status", func(s *sc) {
		s.connected().ok(LoggedOut{Gen: 1}).ok(Stop{}).status(state.LoggedOut)
		s.ok(Reaped{Gen: 1}).ok(Stop{}).status(state.LoggedOut)
	}},

	// Bad MAC and the storm guard.
	{"bad MAC trips at the limit, archives after the close, relinks after the delay", func(s *sc) {
		s.connected()
		for i := range 4 {
			s.ok(BadMAC{Gen: 1, MessageID: fmt.Sprint("m", i), Sender: "a"}).status(state.Connected)
		}
		s.ok(BadMAC{Gen: 1, MessageID: "m0", Sender: "a"}).emitted()
		s.ok(BadMAC{Gen: 1, MessageID: "m4", Sender: "a"}).status(state.Cooldown).emitted(
			Count{Metric: MetricBadMACError}, Count{Metric: MetricBadMACTrip},
			Count{Metric: MetricSessionCleared, Label: "bad_mac_errors"}, Close{Gen: 1, Graceful: true})
		if s.o.Linked || s.o.ArchivePending != ArchiveCorrupted || s.o.Hold.Reason != HoldBadMAC || !s.o.Run {
			s.t.Fatalf("record after trip %+v", s.o.Record)
		}
		s.ok(BadMAC{Gen: 1, MessageID: "late", Sender: "a"}).emitted()
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"}, Archive{Reason: ArchiveCorrupted})
		s.ok(Archived{Reason: ArchiveCorrupted}).emitted().status(state.Cooldown)
		s.after(2 * time.Second).ok(Tick{}).emitted(RequestSlot{N: 2, Egress: "direct"}).status(state.Queued)
		s.ok(SlotGranted{N: 2, Egress: "direct"}).emitted(Launch{Gen: 2, Restoring: false})
	}},
	{"the relink waits for the archive even after the delay", func(s *sc) {
		s.connected()
		for i := range 5 {
			s.ok(BadMAC{Gen: 1, MessageID: fmt.Sprint("m", i)})
		}
		s.after(time.Minute).ok(Tick{}).emitted()
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"}, Archive{Reason: ArchiveCorrupted}).status(state.Queued)
		s.ok(Archived{Reason: ArchiveCorrupted}).emitted(RequestSlot{N: 2, Egress: "direct"})
	}},
	{"third trip within an hour waits the logout cooldown (storm)", func(s *sc) {
		s.connected()
		for trip := 1; trip <= 3; trip++ {
			for i := range 5 {
				s.ok(BadMAC{Gen: s.gen(), MessageID: fmt.Sprint(trip, "-", i)})
			}
			g := s.gen()
			s.ok(Reaped{Gen: g}).ok(Archived{Reason: ArchiveCorrupted})
			if trip < 3 {
				s.after(2 * time.Second).ok(Tick{}).launchedAs(false)
			}
		}
		if s.o.Hold.Reason != HoldStorm || !s.o.Hold.Until.Equal(s.now.Add(5*time.Minute)) {
			s.t.Fatalf("third trip's hold %+v", s.o.Hold)
		}
		s.do(Start{})
		if he := s.held(); he.Why != "repeated Bad MAC trips (storm guard)" {
			s.t.Fatalf("%+v", he)
		}
	}},
	{"clear archives and relinks, and is refused during a hold", func(s *sc) {
		s.connected().ok(Clear{}).status(state.Cooldown).
			emitted(Count{Metric: MetricSessionCleared, Label: "manual"}, Close{Gen: 1, Graceful: true})
		s.do(Clear{})
		if he := s.held(); he.Why != "a manual clear" {
			s.t.Fatalf("%+v", he)
		}
		if s.o.BadMAC.TotalTrips != 1 {
			s.t.Fatalf("clear did not feed the storm guard: %+v", s.o.BadMAC)
		}
	}},
	{"clear of a stopped organization relinks it", func(s *sc) {
		s.connected().ok(Stop{}).ok(Reaped{Gen: 1}).ok(Clear{}).status(state.Cooldown).
			emitted(Count{Metric: MetricSessionCleared, Label: "manual"}, Archive{Reason: ArchiveCorrupted})
	}},

	// Replaced and banned.
	{"replaced never restarts", func(s *sc) {
		s.connected().ok(Replaced{Gen: 1}).status(state.Replaced).emitted(Close{Gen: 1, Graceful: true})
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"})
		if !s.o.WakeAt.IsZero() {
			s.t.Fatalf("a wake is scheduled: %v", s.o.WakeAt)
		}
		s.after(time.Hour).ok(Tick{}).emitted().status(state.Replaced)
	}},
	{"a ban holds until its expiry, then relinks", func(s *sc) {
		s.connected()
		until := s.now.Add(time.Hour)
		s.ok(Banned{Gen: 1, Code: "101", Until: until}).status(state.Banned).emitted(Close{Gen: 1, Graceful: true})
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"})
		if !s.o.Linked {
			s.t.Fatal("a ban unlinked the session")
		}
		s.do(Start{})
		if he := s.held(); !he.Until.Equal(until) || he.Why != "a temporary ban" {
			s.t.Fatalf("%+v", he)
		}
		if got := s.o.Snapshot(s.now, s.p).CooldownUntil; got == nil || !got.Equal(until) {
			s.t.Fatalf("cooldown_until %v", got)
		}
		s.after(time.Hour).ok(Tick{}).emitted(RequestSlot{N: 2, Egress: "direct"}).status(state.Queued)
		s.ok(SlotGranted{N: 2, Egress: "direct"}).emitted(Launch{Gen: 2, Restoring: true})
	}},
	{"a ban without expiry waits for an operator", func(s *sc) {
		s.connected().ok(Banned{Gen: 1}).status(state.Banned).ok(Reaped{Gen: 1})
		s.after(24 * time.Hour).ok(Tick{}).emitted().status(state.Banned)
		s.ok(Start{}).emitted(RequestSlot{N: 2, Egress: "direct"})
	}},
	{"stop of a banned organization keeps it banned", func(s *sc) {
		s.connected().ok(Banned{Gen: 1, Until: s.now.Add(time.Hour)}).ok(Stop{}).status(state.Banned)
		s.ok(Reaped{Gen: 1}).after(2 * time.Hour).ok(Tick{}).emitted().status(state.Banned)
	}},

	// Crash backoff and failed.
	{"a crash restarts after a doubling backoff, then fails at the limit", func(s *sc) {
		s.connected()
		for crash := 1; crash <= 5; crash++ {
			g := s.gen()
			s.ok(StreamEnded{Gen: g, Err: "EOF"}).has(Close{Gen: g, Graceful: false}).
				has(Count{Metric: MetricWorkerRestart, Label: "crash"})
			if s.o.Crashes != crash {
				s.t.Fatalf("crashes %d, want %d", s.o.Crashes, crash)
			}
			if crash == 5 {
				s.status(state.Failed)
				s.ok(Reaped{Gen: g}).emitted(ReleaseSlot{N: s.o.Slot.N, Egress: "direct"})
				break
			}
			s.status(state.Queued)
			delay := time.Second << (crash - 1)
			if !s.o.RetryAt.Equal(s.now.Add(delay)) {
				s.t.Fatalf("crash %d retries at %v, want +%v", crash, s.o.RetryAt.Sub(s.now), delay)
			}
			s.ok(Reaped{Gen: g}).emitted(ReleaseSlot{N: s.o.Slot.N, Egress: "direct"})
			s.after(delay - time.Millisecond).ok(Tick{}).emitted()
			s.after(time.Millisecond).ok(Tick{}).emitted(RequestSlot{N: s.o.Slot.N, Egress: "direct"})
			s.launchedAs(true)
		}
		s.after(time.Hour).ok(Tick{}).emitted().status(state.Failed)
		s.ok(Start{}).emitted(RequestSlot{N: s.o.Slot.N, Egress: "direct"})
		if s.o.Crashes != 0 {
			s.t.Fatal("start did not reset the crash count")
		}
	}},
	{"a stable connection resets the crash count", func(s *sc) {
		s.connected().ok(StreamEnded{Gen: 1}).ok(Reaped{Gen: 1}).after(time.Second).ok(Tick{}).launchedAs(true)
		s.ok(Connected{Gen: 2, JID: "j"}).after(10 * time.Minute).ok(StreamEnded{Gen: 2})
		if s.o.Crashes != 1 {
			s.t.Fatalf("crashes %d after a 10-minute connection, want 1", s.o.Crashes)
		}
	}},
	{"an unhealthy worker is killed without a graceful stop", func(s *sc) {
		s.connected().ok(Unhealthy{Gen: 1, Err: "deadline exceeded"}).
			emitted(Count{Metric: MetricWorkerRestart, Label: "unhealthy"}, Close{Gen: 1, Graceful: false})
		if s.o.LastError != "health check: deadline exceeded" {
			s.t.Fatalf("last error %q", s.o.LastError)
		}
	}},
	{"a failed start counts as a crash", func(s *sc) {
		s.ok(Start{}).ok(SlotGranted{N: 1, Egress: "direct"}).ok(LaunchFailed{Gen: 1, Err: "exec: no such file"}).
			emitted(LaunchDone{N: 1, Egress: "direct"}, Count{Metric: MetricWorkerRestart, Label: "start_failed"}, ReleaseSlot{N: 1, Egress: "direct"}).
			status(state.Queued)
	}},

	{"a changed worker binary fails at once and resumes after a restart", func(s *sc) {
		s.connected().ok(StreamEnded{Gen: 1}).ok(Reaped{Gen: 1}).after(time.Second).ok(Tick{}).ok(SlotGranted{N: 2, Egress: "direct"})
		s.ok(LaunchFailed{Gen: 2, Err: "binary changed", BinaryChanged: true}).status(state.Failed).
			emitted(LaunchDone{N: 2, Egress: "direct"}, ReleaseSlot{N: 2, Egress: "direct"})
		if s.o.Reason != ReasonBinaryChanged || s.o.Crashes != 1 {
			s.t.Fatalf("record %+v", s.o.Record)
		}
		s.o = FromRecord(s.o.Record)
		s.ok(Restore{}).status(state.Queued).emitted(RequestSlot{N: 1, Egress: "direct"})
	}},

	// QR give-up.
	{"an unscanned QR stops the organization and frees the slot", func(s *sc) {
		s.ok(Start{}).launchedAs(false).ok(QRShown{Gen: 1, Code: "c"})
		s.ok(QRGaveUp{Gen: 1}).status(state.Stopped).emitted(Close{Gen: 1, Graceful: true})
		if s.o.Reason != "qr_timeout" || s.o.Snapshot(s.now, s.p).QR != "" {
			s.t.Fatalf("reason %q", s.o.Reason)
		}
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"})
	}},

	// Delete with holds.
	{"delete archives and forgets", func(s *sc) {
		s.connected().ok(Delete{}).emitted(ForgetMetrics{}, Close{Gen: 1, Graceful: true})
		if s.o.Registered() {
			s.t.Fatal("still registered")
		}
		s.do(Stop{})
		if !errors.Is(s.err, ErrUnknownOrg) {
			s.t.Fatalf("stop of a deleted org: %v", s.err)
		}
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"}, Archive{Reason: ArchiveDeleted})
		s.ok(Archived{Reason: ArchiveDeleted}).emitted(Purge{})
		s.ok(Start{Fingerprint: "new"}).emitted(RequestSlot{N: 2, Egress: "direct"}).status(state.Queued)
		if s.o.Fingerprint != "new" || s.o.Linked {
			s.t.Fatalf("re-registered record %+v", s.o.Record)
		}
	}},
	{"a registration after a purge is purged again after its own delete", func(s *sc) {
		s.ok(Start{}).ok(Delete{}).ok(Archived{Reason: ArchiveDeleted}).has(Purge{})
		s.ok(Start{Fingerprint: "again"}).status(state.Queued)
		if s.o.Purged || !s.o.Registered() {
			s.t.Fatalf("registered again: %+v", s.o)
		}
		s.ok(Delete{}).ok(Archived{Reason: ArchiveDeleted}).has(Purge{})
	}},
	{"a second grant of the held slot gives nothing back", func(s *sc) {
		s.ok(Start{}).ok(SlotGranted{N: 1, Egress: "direct"}).emitted(Launch{Gen: 1})
		s.ok(SlotGranted{N: 1, Egress: "direct"}).emitted()
		s.ok(Launched{Gen: 1}).ok(SlotGranted{N: 1, Egress: "direct"}).emitted()
	}},
	{"a launch cancelled and wanted again shows its session", func(s *sc) {
		s.ok(Start{}).ok(SlotGranted{N: 1, Egress: "direct"}).ok(Stop{}).ok(Start{}).emitted()
		s.ok(Launched{Gen: 1, PID: 5}).emitted(LaunchDone{N: 1, Egress: "direct"}).status(state.Starting)
		s.ok(QRShown{Gen: 1, Code: "c"}).status(state.QRRequired)
		if s.o.Snapshot(s.now, s.p).QRCode != "c" {
			s.t.Fatal("the QR is hidden")
		}
	}},
	{"a closing worker's pairing does not mark a store about to be archived linked", func(s *sc) {
		s.ok(Start{}).launchedAs(false).ok(QRShown{Gen: 1, Code: "c"})
		s.ok(Clear{}).ok(Paired{Gen: 1, JID: "j"}).ok(Connected{Gen: 1, JID: "j"})
		if s.o.Linked {
			s.t.Fatal("linked while the store awaits its archive")
		}
		s.ok(Reaped{Gen: 1}).ok(Archived{Reason: ArchiveCorrupted}).after(3 * time.Second).ok(Tick{})
		s.ok(SlotGranted{N: 2, Egress: "direct"}).ok(Launched{Gen: 2}).status(state.Starting)
	}},
	{"delete keeps a hold: a start of the same id meets it", func(s *sc) {
		s.connected().ok(LoggedOut{Gen: 1}).ok(Reaped{Gen: 1}).ok(Archived{Reason: ArchiveLoggedOut})
		until := s.o.Hold.Until
		s.ok(Delete{}).emitted(ForgetMetrics{}, Archive{Reason: ArchiveDeleted})
		s.ok(Archived{Reason: ArchiveDeleted}).emitted()
		s.do(Start{})
		if he := s.held(); !he.Until.Equal(until) {
			s.t.Fatalf("%+v", he)
		}
		if s.o.Registered() {
			s.t.Fatal("a refused start revived the tombstone")
		}
		s.after(5 * time.Minute).ok(Tick{}).emitted(Purge{})
	}},
	{"a tombstone keeps the storm history", func(s *sc) {
		s.connected().ok(Clear{}).ok(Reaped{Gen: 1}).ok(Archived{Reason: ArchiveCorrupted}).after(time.Minute)
		s.ok(Delete{}).emitted(ForgetMetrics{}, Archive{Reason: ArchiveDeleted}).ok(Archived{Reason: ArchiveDeleted})
		if !s.o.WakeAt.Equal(t0.Add(time.Hour)) {
			s.t.Fatalf("tombstone wakes at %v", s.o.WakeAt)
		}
		s.ok(Start{}).ok(Clear{}).ok(Stop{}).after(3 * time.Second).ok(Clear{})
		if s.o.Hold.Reason != HoldStorm {
			s.t.Fatalf("third clear within the hour across a delete: %+v", s.o.Hold)
		}
	}},

	// Restore at boot.
	{"restore queues what should run and keeps idle statuses", func(s *sc) {
		s.o = FromRecord(Record{ID: "2", Status: state.Connected, Run: true, Linked: true})
		s.ok(Restore{Fingerprint: "fp"}).status(state.Queued).emitted(RequestSlot{N: 1, Egress: "direct"})
		if s.o.Fingerprint != "fp" {
			s.t.Fatal("restore did not take the fingerprint")
		}
		s.o = FromRecord(Record{ID: "2", Status: state.LoggedOut, Hold: Hold{Until: t0.Add(time.Minute), Reason: HoldLogout}})
		s.ok(Restore{}).status(state.LoggedOut).emitted()
	}},
	{"restore finishes a pending archive before launching", func(s *sc) {
		s.o = FromRecord(Record{ID: "2", Status: state.Cooldown, Run: true, ArchivePending: ArchiveCorrupted})
		s.ok(Restore{}).emitted(Archive{Reason: ArchiveCorrupted}).status(state.Queued)
		s.ok(Archived{Reason: ArchiveCorrupted}).emitted(RequestSlot{N: 1, Egress: "direct"})
	}},
	{"restore relinks a ban that expired while down", func(s *sc) {
		s.o = FromRecord(Record{ID: "2", Status: state.Banned, Run: true, Linked: true, Hold: Hold{Until: t0.Add(-time.Minute), Reason: HoldBan}})
		s.ok(Restore{}).emitted(RequestSlot{N: 1, Egress: "direct"}).status(state.Queued)
	}},
	{"restore of a tombstone archives then purges", func(s *sc) {
		s.o = FromRecord(Record{ID: "2", Status: state.Stopped, Deleted: true, ArchivePending: ArchiveDeleted})
		s.ok(Restore{}).emitted(Archive{Reason: ArchiveDeleted})
		s.ok(Archived{Reason: ArchiveDeleted}).emitted(Purge{})
	}},

	// Archives that fail keep the organization blocked.
	{"a failed archive blocks the launch and is retried", func(s *sc) {
		s.connected().ok(Clear{}).ok(Reaped{Gen: 1})
		s.after(3 * time.Second).ok(ArchiveFailed{Reason: ArchiveCorrupted, Err: "EPERM"}).emitted().status(state.Queued)
		if !s.o.WakeAt.Equal(s.now.Add(time.Second)) {
			s.t.Fatalf("retry at %v", s.o.WakeAt)
		}
		s.after(time.Second).ok(Tick{}).emitted(Archive{Reason: ArchiveCorrupted})
		s.ok(ArchiveFailed{Reason: ArchiveCorrupted, Err: "EPERM"})
		if !s.o.WakeAt.Equal(s.now.Add(2 * time.Second)) {
			s.t.Fatalf("second retry at %v", s.o.WakeAt)
		}
		s.after(2 * time.Second).ok(Tick{}).ok(Archived{Reason: ArchiveCorrupted}).emitted(RequestSlot{N: 2, Egress: "direct"})
	}},

	// Shutdown.
	{"shutdown closes without changing what should run", func(s *sc) {
		s.connected().ok(Shutdown{}).emitted(Close{Gen: 1, Graceful: true}).status(state.Connected)
		if !s.o.Run {
			s.t.Fatal("shutdown cleared Run")
		}
		s.ok(Reaped{Gen: 1}).emitted(ReleaseSlot{N: 1, Egress: "direct"}).status(state.Connected)
	}},
}

func TestRules(t *testing.T) {
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) { r.run(newSC(t)) })
	}
}

func TestRefusedInputsChangeNothing(t *testing.T) {
	s := newSC(t).connected().ok(LoggedOut{Gen: 1})
	before := s.o
	for _, in := range []Input{Start{}, Start{Force: true}, Clear{}} {
		s.do(in)
		if s.err == nil || len(s.effs) != 0 || !s.o.Record.Equal(before.Record) {
			t.Fatalf("%T during a hold: err %v, effects %v", in, s.err, s.effs)
		}
	}
}

func TestUnknownOrganization(t *testing.T) {
	for _, in := range []Input{Stop{}, Clear{}, Delete{}, Logout{}} {
		s := newSC(t).do(in)
		if !errors.Is(s.err, ErrUnknownOrg) {
			t.Errorf("%T on a new organization: %v", in, s.err)
		}
	}
}

func TestRecordEqual(t *testing.T) {
	a := Record{ID: "2", Hold: Hold{Until: t0}}
	b := a
	b.Hold.Until = t0.In(time.FixedZone("x", 3600))
	if !a.Equal(b) {
		t.Fatal("the same instant in another zone is a change")
	}
	b.BadMAC.Trips = []time.Time{t0}
	if a.Equal(b) {
		t.Fatal("a new trip is not a change")
	}
}
