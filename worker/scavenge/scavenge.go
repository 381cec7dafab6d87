// Package scavenge hands an idle worker's free heap back to the OS. A
// worker's heap peaks while it links (the QR, the key exchange, the first
// app-state sync) and while it sends a burst; then it idles for hours,
// and the Go runtime's background scavenger returns the freed pages only
// slowly. A Scavenger runs one debug.FreeOSMemory once the worker has been
// quiet for a while after such a peak.
package scavenge

import (
	"context"
	"runtime/debug"
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract"
	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

// Quiet is how long a worker waits after its last peak before it returns
// its free heap: long enough that a burst of sends is one peak, not one
// forced GC per message.
const Quiet = 2 * time.Second

// Scavenger runs free once no Poke has come for its quiet period.
type Scavenger struct {
	quiet time.Duration
	free  func()
	mu    sync.Mutex
	timer *time.Timer
}

// New returns a Scavenger that calls free (debug.FreeOSMemory in a worker)
// quiet after the last Poke.
func New(quiet time.Duration, free func()) *Scavenger {
	return &Scavenger{quiet: quiet, free: free}
}

// NewOS returns the worker's Scavenger: debug.FreeOSMemory, Quiet after
// the last Poke.
func NewOS() *Scavenger { return New(Quiet, debug.FreeOSMemory) }

// Poke says a peak just ended; the free runs after the quiet period,
// unless another Poke comes first and pushes it back.
func (s *Scavenger) Poke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer == nil {
		s.timer = time.AfterFunc(s.quiet, s.free)
		return
	}
	s.timer.Reset(s.quiet)
}

// Worker pokes its Scavenger after the peaks of a contract.Worker: each
// connection (a link, a restore from the auth directory, a reconnect) and
// each send.
type Worker struct {
	contract.Worker
	S *Scavenger
}

// Events pokes the Scavenger once a Connected event has gone to the
// supervisor.
func (w Worker) Events(ctx context.Context, sink func(*pb.Event) error) error {
	return w.Worker.Events(ctx, func(ev *pb.Event) error {
		err := sink(ev)
		if ev.GetConnected() != nil {
			w.S.Poke()
		}
		return err
	})
}

// SendText sends, then pokes the Scavenger.
func (w Worker) SendText(ctx context.Context, req *pb.SendTextRequest) (*pb.SendTextResponse, error) {
	defer w.S.Poke()
	return w.Worker.SendText(ctx, req)
}

// SendMedia sends, then pokes the Scavenger: the file's bytes are the
// largest thing a worker ever holds.
func (w Worker) SendMedia(ctx context.Context, req *pb.SendMediaRequest) (*pb.SendTextResponse, error) {
	defer w.S.Poke()
	return w.Worker.SendMedia(ctx, req)
}
