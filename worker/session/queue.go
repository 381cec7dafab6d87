package session

import (
	"context"
	"errors"
	"sync"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

// maxQueued bounds the events kept while nobody listens. The first events
// (QR, Connected) come before the supervisor subscribes and must survive;
// a session that nobody drains for this long is already lost, and the
// worker must not grow until the OOM killer picks it.
const maxQueued = 10_000

// errReplaced ends a subscription that a newer one took over.
var errReplaced = errors.New("event stream taken over by a newer subscriber")

// queue hands events from whatsmeow's handlers, which must never block, to
// one subscriber at a time. Events published while nobody is subscribed
// wait for the next subscriber.
type queue struct {
	mu      sync.Mutex
	items   []*pb.Event
	wake    chan struct{} // closed and replaced whenever items or state change
	closed  bool
	gen     uint64 // subscription generation: a new subscriber evicts the old
	dropped int
}

func newQueue() *queue { return &queue{wake: make(chan struct{})} }

// signal wakes every waiter; callers hold mu.
func (q *queue) signal() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// publish queues ev without blocking. It reports false when ev was dropped
// because the queue is full or closed.
func (q *queue) publish(ev *pb.Event) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.items) >= maxQueued {
		q.dropped++
		return false
	}
	q.items = append(q.items, ev)
	q.signal()
	return true
}

// close ends the stream once the subscriber has taken what is queued.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		q.signal()
	}
}

// subscribe delivers queued and future events to sink until ctx ends, the
// queue is closed and drained (nil), sink fails, or a newer subscriber
// takes over. An event whose sink call failed goes back to the head of the
// queue: the supervisor may see it twice, but never not at all.
func (q *queue) subscribe(ctx context.Context, sink func(*pb.Event) error) error {
	q.mu.Lock()
	q.gen++
	gen := q.gen
	q.signal() // evict the previous subscriber
	q.mu.Unlock()

	for {
		q.mu.Lock()
		if q.gen != gen {
			q.mu.Unlock()
			return errReplaced
		}
		if len(q.items) == 0 {
			if q.closed {
				q.mu.Unlock()
				return nil
			}
			wake := q.wake
			q.mu.Unlock()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-wake:
			}
			continue
		}
		ev := q.items[0]
		q.items = q.items[1:]
		q.mu.Unlock()

		if err := sink(ev); err != nil {
			q.requeue(ev)
			return err
		}
	}
}

func (q *queue) requeue(ev *pb.Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append([]*pb.Event{ev}, q.items...)
	q.signal()
}

// droppedCount is for the stop log line: dropped events are worth knowing about.
func (q *queue) droppedCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
