package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

func ev(ms int64) *pb.Event { return &pb.Event{AtUnixMs: ms} }

func TestQueueKeepsEventsUntilSubscribed(t *testing.T) {
	q := newQueue()
	q.publish(ev(1))
	q.publish(ev(2))
	q.close()
	var got []int64
	err := q.subscribe(context.Background(), func(e *pb.Event) error { got = append(got, e.AtUnixMs); return nil })
	if err != nil || len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("got %v, %v; want [1 2], nil", got, err)
	}
	if q.publish(ev(3)) {
		t.Fatal("publish after close succeeded")
	}
}

func TestQueueRequeuesWhatTheSinkFailed(t *testing.T) {
	q := newQueue()
	q.publish(ev(1))
	q.publish(ev(2))
	boom := errors.New("stream broken")
	if err := q.subscribe(context.Background(), func(*pb.Event) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
	q.close()
	var got []int64
	_ = q.subscribe(context.Background(), func(e *pb.Event) error { got = append(got, e.AtUnixMs); return nil })
	if len(got) != 2 || got[0] != 1 {
		t.Fatalf("second subscriber got %v, want [1 2]", got)
	}
}

func TestQueueDeliversLiveEventsAndEndsOnClose(t *testing.T) {
	q := newQueue()
	got := make(chan int64, 10)
	done := make(chan error, 1)
	go func() {
		done <- q.subscribe(context.Background(), func(e *pb.Event) error { got <- e.AtUnixMs; return nil })
	}()
	q.publish(ev(7))
	if v := <-got; v != 7 {
		t.Fatalf("got %d, want 7", v)
	}
	q.close()
	if err := <-done; err != nil {
		t.Fatalf("subscribe after close: %v", err)
	}
}

func TestQueueNewSubscriberTakesOver(t *testing.T) {
	q := newQueue()
	first := make(chan error, 1)
	go func() { first <- q.subscribe(context.Background(), func(*pb.Event) error { return nil }) }()
	// Wait until the first subscriber is registered before the second comes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		gen := q.gen
		q.mu.Unlock()
		if gen == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first subscriber never registered")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() { second <- q.subscribe(ctx, func(*pb.Event) error { return nil }) }()
	if err := <-first; !errors.Is(err, errReplaced) {
		t.Fatalf("first subscriber ended with %v, want errReplaced", err)
	}
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("second subscriber ended with %v, want context.Canceled", err)
	}
}

func TestQueueBounded(t *testing.T) {
	q := newQueue()
	for i := range maxQueued {
		if !q.publish(ev(int64(i))) {
			t.Fatalf("event %d dropped below the bound", i)
		}
	}
	if q.publish(ev(-1)) || q.droppedCount() != 1 {
		t.Fatal("queue grew past its bound")
	}
}
