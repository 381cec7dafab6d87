package lifecycle

import (
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// connectedOrg is an organization with a live, linked worker: the state
// most transitions and status polls meet.
func connectedOrg(b *testing.B) Org {
	b.Helper()
	s := newSC(b).connected()
	if s.o.Status != state.Connected {
		b.Fatalf("status %s", s.o.Status)
	}
	return s.o
}

// BenchmarkSnapshot is one status object, what every GET /v1/orgs/{id}
// builds.
func BenchmarkSnapshot(b *testing.B) {
	o, p := connectedOrg(b), policy()
	for b.Loop() {
		o.Snapshot(t0, p)
	}
}

// BenchmarkStep is one transition of a connected organization on a worker
// event, the runner's hot path.
func BenchmarkStep(b *testing.B) {
	o, p := connectedOrg(b), policy()
	in := Disconnected{Gen: o.Proc.Gen}
	for b.Loop() {
		Step(o, in, t0, p)
	}
}
