package lifecycle

import (
	"slices"
	"strings"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

func ptr(s string) *string { return &s }

const (
	proxyA  = "socks5://alice:s3cret@10.0.0.1:1080"
	egressA = "10.0.0.1:1080"
	proxyB  = "http://10.0.0.2:3128"
	egressB = "10.0.0.2:3128"
)

// The proxy an organization starts with decides the egress its slot counts
// against and the proxy its worker connects through; the status shows it
// without its password.
func TestProxyDecidesTheEgress(t *testing.T) {
	s := newSC(t)
	s.ok(Start{Proxy: ptr(proxyA)}).emitted(RequestSlot{N: 1, Egress: egressA})
	s.ok(SlotGranted{N: 1, Egress: egressA}).emitted(Launch{Gen: 1, Proxy: proxyA})
	s.ok(Launched{Gen: 1, PID: 7}).emitted(LaunchDone{N: 1, Egress: egressA})
	snap := s.o.Snapshot(s.now, s.p)
	if snap.Proxy != "socks5://***@10.0.0.1:1080" || snap.Egress != egressA {
		t.Fatalf("snapshot proxy %q egress %q", snap.Proxy, snap.Egress)
	}
}

// A changed proxy applies from the next start: a connected worker is not
// closed for it, and the restart after a crash queues on the new egress.
func TestChangedProxyWaitsForTheNextStart(t *testing.T) {
	s := newSC(t).connected()
	s.ok(Start{Proxy: ptr(proxyB)})
	if len(s.effs) != 0 || s.o.Status != state.Connected {
		t.Fatalf("a proxy change touched a connected session: %v, %s", s.effs, s.o.Status)
	}
	if got := s.o.Snapshot(s.now, s.p).Egress; got != "direct" {
		t.Fatalf("the running worker's egress shows as %q", got)
	}
	gen := s.gen()
	s.ok(StreamEnded{Gen: gen, Err: "exit status 2"}).ok(Reaped{Gen: gen})
	if !slices.Contains(s.actions(), Effect(ReleaseSlot{N: 1, Egress: "direct"})) {
		t.Fatalf("the old slot was not given back on its egress: %v", s.actions())
	}
	s.after(s.p.CrashBackoff[0])
	s.ok(Tick{}).emitted(RequestSlot{N: 2, Egress: egressB})
}

// A request still waiting for its slot moves to the new egress at once.
func TestChangedProxyRequeuesAWaitingRequest(t *testing.T) {
	s := newSC(t)
	s.ok(Start{}).emitted(RequestSlot{N: 1, Egress: "direct"})
	s.ok(Start{Proxy: ptr(proxyA)}).emitted(ReleaseSlot{N: 1, Egress: "direct"}, RequestSlot{N: 2, Egress: egressA})
	s.ok(SlotGranted{N: 2, Egress: egressA}).emitted(Launch{Gen: 1, Proxy: proxyA})
}

// A proxy named by its host is counted on the address the name resolves
// to: the fleet looks it up (ResolveEgress) before the request joins the
// queue, and the slot keeps that key until it is given back.
func TestNamedProxyResolvesBeforeQueueing(t *testing.T) {
	const named = "socks5://u:p@localhost:01080"
	s := newSC(t)
	s.ok(Start{Proxy: ptr(named)}).emitted(ResolveEgress{N: 1, Proxy: named}).status(state.Queued)
	if got := s.o.Snapshot(s.now, s.p).Egress; got != "localhost:1080" {
		t.Fatalf("while resolving the egress shows as %q", got)
	}
	s.ok(EgressResolved{N: 1, Egress: "127.0.0.1:1080"}).emitted(RequestSlot{N: 1, Egress: "127.0.0.1:1080"})
	s.ok(SlotGranted{N: 1, Egress: "127.0.0.1:1080"}).emitted(Launch{Gen: 1, Proxy: named})
	if got := s.o.Snapshot(s.now, s.p).Egress; got != "127.0.0.1:1080" {
		t.Fatalf("the worker's egress shows as %q", got)
	}
	s.ok(Launched{Gen: 1, PID: 7}).emitted(LaunchDone{N: 1, Egress: "127.0.0.1:1080"})
	s.ok(Stop{}).ok(Reaped{Gen: 1}).has(ReleaseSlot{N: 1, Egress: "127.0.0.1:1080"})
}

// A name that does not exist fails that start with the reason shown and
// launches nothing; starting again looks it up again.
func TestUnresolvedProxyFailsTheStart(t *testing.T) {
	s := newSC(t)
	s.ok(Start{Proxy: ptr("socks5://nowhere.invalid:1080")}).emitted(ResolveEgress{N: 1, Proxy: "socks5://nowhere.invalid:1080"})
	s.ok(EgressResolved{N: 1, Err: "proxy host nowhere.invalid does not resolve: no such host"}).emitted().status(state.Failed)
	if s.o.Reason != ReasonProxyUnresolved || !strings.Contains(s.o.Snapshot(s.now, s.p).LastError, "nowhere.invalid does not resolve") {
		t.Fatalf("reason %q last_error %q", s.o.Reason, s.o.LastError)
	}
	if s.o.Slot.Phase != SlotNone || s.o.Crashes != 0 {
		t.Fatalf("slot %+v crashes %d", s.o.Slot, s.o.Crashes)
	}
	s.ok(Start{}).emitted(ResolveEgress{N: 2, Proxy: "socks5://nowhere.invalid:1080"})
}

// A lookup that timed out is tried again after the first crash backoff,
// without counting as a crash.
func TestTemporaryLookupFailureRetries(t *testing.T) {
	s := newSC(t)
	s.ok(Start{Proxy: ptr("http://proxy.example:3128")})
	s.ok(EgressResolved{N: 1, Err: "proxy host proxy.example does not resolve: i/o timeout", Temporary: true}).emitted().status(state.Queued)
	if s.o.Crashes != 0 || s.o.LastEvent != ReasonProxyUnresolved || s.o.LastError == "" {
		t.Fatalf("crashes %d last_event %q last_error %q", s.o.Crashes, s.o.LastEvent, s.o.LastError)
	}
	s.after(s.p.CrashBackoff[0]).ok(Tick{}).emitted(ResolveEgress{N: 2, Proxy: "http://proxy.example:3128"})
}

// An answer for a request withdrawn meanwhile (stopped, or the proxy
// changed) queues nothing.
func TestLateResolutionIsIgnored(t *testing.T) {
	s := newSC(t)
	s.ok(Start{Proxy: ptr("http://proxy.example:3128")})
	s.ok(Stop{}).emitted()
	s.ok(EgressResolved{N: 1, Egress: "10.0.0.9:3128"}).emitted()
	s.ok(Start{}).emitted(ResolveEgress{N: 2, Proxy: "http://proxy.example:3128"})
	s.ok(Start{Proxy: ptr(proxyA)}).emitted(RequestSlot{N: 3, Egress: egressA})
	s.ok(EgressResolved{N: 2, Egress: "10.0.0.9:3128"}).emitted()
}
