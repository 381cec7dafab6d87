package fleet

import (
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/queue"
)

// slots is the host-wide start queue shared by the runners: it admits one
// start at a time after its gap and jitter, and hands the slot to the
// organization with grant.
type slots struct {
	mu      sync.Mutex
	q       *queue.Queue
	clock   clock.Clock
	metrics Metrics
	grant   func(queue.Ticket)
	closed  bool
}

func newSlots(cfg queue.Config, jitter func(min, max time.Duration) time.Duration, c clock.Clock, m Metrics, grant func(queue.Ticket)) *slots {
	return &slots{q: queue.New(cfg, jitter), clock: c, metrics: m, grant: grant}
}

func (s *slots) request(t queue.Ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.Request(t)
	s.pump()
}

// release gives a slot back (or withdraws a request); the lifecycle calls
// it only once the slot's worker process has been reaped.
func (s *slots) release(t queue.Ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.Cancel(t)
	s.pump()
}

// spawned records when the admitted start really began.
func (s *slots) spawned(t queue.Ticket, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.Spawned(t, at)
}

// started ends the start in flight, so the next one may be admitted.
func (s *slots) started(t queue.Ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.Started(t)
	s.pump()
}

// fire hands an admitted slot over once its start is due, unless the
// request was withdrawn meanwhile.
func (s *slots) fire(t queue.Ticket) {
	s.mu.Lock()
	due := s.q.Holds(t)
	s.mu.Unlock()
	if due {
		s.grant(t)
	}
}

// waitsFor is what org's start waits for in the queue, or "".
func (s *slots) waitsFor(org string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.WaitsFor(org)
}

// close stops admitting: nothing starts during a shutdown.
func (s *slots) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

func (s *slots) pump() {
	defer func() {
		s.metrics.SetLive(s.q.LiveByEgress())
		s.metrics.SetQueueDepth(s.q.Depth())
	}()
	if s.closed {
		return
	}
	now := s.clock.Now()
	for {
		t, at, ok := s.q.Next(now)
		if !ok {
			return
		}
		s.clock.AfterFunc(at.Sub(now), func() { s.fire(t) })
	}
}
