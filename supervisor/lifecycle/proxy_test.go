package lifecycle

import (
	"slices"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

func ptr(s string) *string { return &s }

const (
	proxyA  = "socks5://alice:s3cret@10.0.0.1:1080"
	egressA = "socks5://10.0.0.1:1080"
	proxyB  = "http://10.0.0.2:3128"
	egressB = "http://10.0.0.2:3128"
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
	if snap.Proxy != "socks5://alice:***@10.0.0.1:1080" || snap.Egress != egressA {
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
