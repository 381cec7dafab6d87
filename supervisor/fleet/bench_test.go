package fleet

import (
	"fmt"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

// BenchmarkEventFanIn is the path of a worker's session event through the
// supervisor: five workers' streams at once, each event translated, stepped,
// committed (to an in-memory store) and published. An op is one event.
func BenchmarkEventFanIn(b *testing.B) {
	const orgs = 5
	h := newHarness(b, testConfig())
	workers := make([]*fakeWorker, orgs)
	for i := range workers {
		id := fmt.Sprintf("o%d", i)
		workers[i] = h.connected(id, id+"@s.whatsapp.net")
	}
	down := &pb.Event{Kind: &pb.Event_Disconnected{Disconnected: &pb.Disconnected{}}}
	h.store.mu.Lock()
	base := h.store.writes
	h.store.mu.Unlock()
	b.ResetTimer()
	// Every event changes the status (disconnected, connected again), so
	// each one is a commit: the fan-in's full cost.
	rounds := max(b.N/(2*orgs), 1)
	done := make(chan struct{})
	for i, w := range workers {
		up := &pb.Event{Kind: &pb.Event_Connected{Connected: &pb.Connected{Jid: fmt.Sprintf("o%d@s.whatsapp.net", i)}}}
		go func() {
			defer func() { done <- struct{}{} }()
			for range rounds {
				w.events <- down
				w.events <- up
			}
		}()
	}
	for range workers {
		<-done
	}
	want := base + rounds*2*orgs
	h.eventually("every event committed", func() bool {
		h.store.mu.Lock()
		defer h.store.mu.Unlock()
		return h.store.writes >= want
	})
}
