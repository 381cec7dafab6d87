package lifecycle

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/badmac"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// policy is the default configuration's policy.
func policy() Policy {
	return Policy{
		BadMAC: badmac.Policy{
			Limit: 5, MinSenders: 1, ResetAfter: time.Minute, RestartDelay: 2 * time.Second,
			StormTrips: 3, StormWindow: time.Hour, StormMinWait: 5 * time.Minute, StormMaxCooldown: time.Hour,
		},
		LogoutCooldown:   5 * time.Minute,
		CrashBackoff:     [2]time.Duration{time.Second, 5 * time.Minute},
		CrashLimit:       5,
		StableConnection: 10 * time.Minute,
		ArchiveRetry:     [2]time.Duration{time.Second, 5 * time.Minute},
	}
}

// sc walks one organization through inputs with a hand-moved clock.
type sc struct {
	t    testing.TB
	o    Org
	now  time.Time
	p    Policy
	effs []Effect
	err  error
}

func newSC(t testing.TB) *sc {
	return &sc{t: t, o: New("2"), now: t0, p: policy()}
}

// do applies in and keeps its effects and error.
func (s *sc) do(in Input) *sc {
	s.t.Helper()
	r := Step(s.o, in, s.now, s.p)
	s.o, s.effs, s.err = r.Org, r.Effects, r.Err
	return s
}

// ok applies in and fails on a refusal.
func (s *sc) ok(in Input) *sc {
	s.t.Helper()
	if s.do(in); s.err != nil {
		s.t.Fatalf("%T refused: %v", in, s.err)
	}
	return s
}

func (s *sc) after(d time.Duration) *sc {
	s.now = s.now.Add(d)
	return s
}

func (s *sc) status(want state.Status) *sc {
	s.t.Helper()
	if s.o.Status != want {
		s.t.Fatalf("status %s (reason %s), want %s", s.o.Status, s.o.Reason, want)
	}
	return s
}

// actions are the effects without log notes.
func (s *sc) actions() []Effect {
	var out []Effect
	for _, e := range s.effs {
		if _, note := e.(Note); !note {
			out = append(out, e)
		}
	}
	return out
}

// emitted fails unless the last step's actions are exactly want.
func (s *sc) emitted(want ...Effect) *sc {
	s.t.Helper()
	got := s.actions()
	if len(got) == 0 && len(want) == 0 {
		return s
	}
	if !reflect.DeepEqual(got, want) {
		s.t.Fatalf("effects\n got %s\nwant %s", fmt.Sprint(got), fmt.Sprint(want))
	}
	return s
}

// has fails unless the last step emitted e among its actions.
func (s *sc) has(e Effect) *sc {
	s.t.Helper()
	for _, a := range s.actions() {
		if reflect.DeepEqual(a, e) {
			return s
		}
	}
	s.t.Fatalf("no %#v among %v", e, s.actions())
	return s
}

func (s *sc) held() *HoldError {
	s.t.Helper()
	var he *HoldError
	if !errors.As(s.err, &he) {
		s.t.Fatalf("want a HoldError, got %v", s.err)
	}
	return he
}

// launchedAs brings a registered, queued organization to a running worker.
func (s *sc) launchedAs(restoring bool) *sc {
	s.t.Helper()
	n, gen := s.o.Slot.N, s.o.Proc.Gen+1
	s.ok(SlotGranted{N: n, Egress: s.o.Slot.Egress}).has(Launch{Gen: gen, Restoring: s.o.Linked, Proxy: s.o.Slot.Proxy})
	return s.ok(Launched{Gen: gen, PID: 100 + gen, Restoring: restoring})
}

// connected registers, starts, links and connects the organization.
func (s *sc) connected() *sc {
	s.t.Helper()
	s.ok(Start{Fingerprint: "Chrome/Linux/6.1.0"}).launchedAs(false)
	gen := s.o.Proc.Gen
	s.ok(QRShown{Gen: gen, Code: "2@x", PNG: "data:image/png;base64,AA", ExpiresAt: s.now.Add(time.Minute)})
	s.ok(Paired{Gen: gen, JID: "573007915262:1@s.whatsapp.net"})
	return s.ok(Connected{Gen: gen, JID: "573007915262:1@s.whatsapp.net"}).status(state.Connected)
}

func (s *sc) gen() int { return s.o.Proc.Gen }
