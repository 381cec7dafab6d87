package lifecycle

import (
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
)

// restoringLinked is issue 15's boot: the LOGOUT's commit was lost, so the
// record still says linked and connected, and the restore launches a worker
// told to expect a device.
func restoringLinked(t *testing.T) *sc {
	t.Helper()
	s := newSC(t)
	s.now = clocktest.Origin()
	s.o = FromRecord(Record{
		ID: "2", Status: state.Connected, Run: true, Linked: true,
		JID: "573007915262:1@s.whatsapp.net", Fingerprint: "fp",
	})
	s.ok(Restore{}).status(state.Queued).emitted(RequestSlot{N: 1, Egress: "direct"})
	s.ok(SlotGranted{N: 1, Egress: "direct"}).emitted(Launch{Gen: 1, Restoring: true}).status(state.Restoring)
	return s
}

// TestDeviceMissingHoldsFromNow: a worker launched to restore reports that
// its store has no device. That is a LOGOUT the supervisor never saved; the
// cooldown counts from the moment the supervisor learns of it, whatever
// happened to the record while the worker launched, and nothing launches
// again before it ends (nor after: a LOGOUT waits for an operator).
func TestDeviceMissingHoldsFromNow(t *testing.T) {
	const learnedAfter = 3100 * time.Millisecond // the launch, 3.1 s after the LOGOUT
	cases := []struct {
		name string
		// during runs between the launch and the worker's answer.
		during      func(s *sc)
		wantStatus  state.Status
		wantArchive string
		deleted     bool
	}{
		{"restore of a linked org", func(*sc) {}, state.LoggedOut, ArchiveLoggedOut, false},
		{"stopped while the restore launched", func(s *sc) { s.ok(Stop{}) }, state.LoggedOut, ArchiveLoggedOut, false},
		// The clear's own hold (restart_delay) is seconds; the lost LOGOUT's
		// cooldown must still apply.
		{"cleared while the restore launched", func(s *sc) { s.ok(Clear{}) }, state.LoggedOut, ArchiveCorrupted, false},
		// The tombstone must carry the cooldown to a later registration.
		{"deleted while the restore launched", func(s *sc) { s.ok(Delete{}) }, state.Stopped, ArchiveDeleted, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := restoringLinked(t)
			tc.during(s)
			s.after(learnedAfter)
			learned := s.now
			s.ok(Launched{Gen: 1, PID: 7, DeviceMissing: true}).has(LaunchDone{N: 1, Egress: "direct"}).
				has(Close{Gen: 1, Graceful: true}).status(tc.wantStatus)
			until := learned.Add(s.p.LogoutCooldown)
			if !s.o.Hold.Until.Equal(until) || s.o.Hold.Reason != HoldLogout {
				t.Fatalf("hold %+v, want a logout cooldown until %v (from when the supervisor learned of it)", s.o.Hold, until)
			}
			if s.o.Run || s.o.Linked || s.o.JID != "" || s.o.ArchivePending != tc.wantArchive {
				t.Fatalf("record %+v", s.o.Record)
			}
			if !s.o.WakeAt.Equal(until) {
				t.Fatalf("wake at %v, want the hold's end %v", s.o.WakeAt, until)
			}
			if !tc.deleted {
				if s.o.Reason != "device_missing" {
					t.Fatalf("reason %q", s.o.Reason)
				}
				s.has(Count{Metric: MetricLogout, Label: "device_missing"})
			}
			s.ok(Reaped{Gen: 1}).has(Archive{Reason: tc.wantArchive})
			s.ok(Archived{Reason: tc.wantArchive, Path: "/x"})

			// Sampled every 10 s through the hold and past it: no launch
			// and no slot by itself, and every start refused until the end.
			for s.now.Before(until.Add(time.Minute)) {
				s.after(10 * time.Second)
				s.ok(Tick{})
				for _, e := range s.actions() {
					switch e.(type) {
					case Launch, RequestSlot:
						t.Fatalf("at +%v: %#v with no operator start", s.now.Sub(learned), e)
					}
				}
				if s.now.Before(until) {
					s.do(Start{Force: true})
					if he := s.held(); !he.Until.Equal(until) {
						t.Fatalf("at +%v: start refused until %v, want %v", s.now.Sub(learned), he.Until, until)
					}
					if len(s.actions()) != 0 {
						t.Fatalf("a refused start acted: %v", s.actions())
					}
				}
			}
			if !tc.deleted && s.o.Status != state.LoggedOut {
				t.Fatalf("after the hold: %s, want logged_out until an operator starts it", s.o.Status)
			}
			// Only now may it link again, and as a new link: the worker is
			// no longer told to expect a device.
			s.ok(Start{Fingerprint: "fp"}).has(RequestSlot{N: 2, Egress: "direct"})
			s.ok(SlotGranted{N: 2, Egress: "direct"}).has(Launch{Gen: 2, Restoring: false})
		})
	}
}
