package scavenge

import (
	"context"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract"
	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

// counting returns a Scavenger whose free reports on the returned channel.
func counting(quiet time.Duration) (*Scavenger, chan struct{}) {
	freed := make(chan struct{}, 10)
	return New(quiet, func() { freed <- struct{}{} }), freed
}

func waitFree(t *testing.T, freed chan struct{}) {
	t.Helper()
	select {
	case <-freed:
	case <-time.After(10 * time.Second):
		t.Fatal("no free after a poke")
	}
}

func TestPokesCoalesce(t *testing.T) {
	s, freed := counting(50 * time.Millisecond)
	for range 5 {
		s.Poke()
	}
	waitFree(t, freed)
	select {
	case <-freed:
		t.Fatal("five pokes in a row freed twice")
	case <-time.After(200 * time.Millisecond):
	}
	// A later peak is freed again.
	s.Poke()
	waitFree(t, freed)
}

func TestNoPokeNoFree(t *testing.T) {
	_, freed := counting(time.Millisecond)
	select {
	case <-freed:
		t.Fatal("freed without a poke")
	case <-time.After(50 * time.Millisecond):
	}
}

// session is a contract.Worker that emits the given events and sends
// nothing; the methods a test does not call are the embedded nil's.
type session struct {
	contract.Worker
	events []*pb.Event
}

func (s session) Events(_ context.Context, sink func(*pb.Event) error) error {
	for _, ev := range s.events {
		if err := sink(ev); err != nil {
			return err
		}
	}
	return nil
}

func (session) SendText(context.Context, *pb.SendTextRequest) (*pb.SendTextResponse, error) {
	return &pb.SendTextResponse{}, nil
}

func TestWorkerPokesAfterConnectedAndSends(t *testing.T) {
	qr := &pb.Event{Kind: &pb.Event_Qr{Qr: &pb.QR{}}}
	connected := &pb.Event{Kind: &pb.Event_Connected{Connected: &pb.Connected{}}}

	s, freed := counting(time.Millisecond)
	w := Worker{Worker: session{events: []*pb.Event{qr}}, S: s}
	var got []*pb.Event
	if err := w.Events(context.Background(), func(ev *pb.Event) error { got = append(got, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != qr {
		t.Fatalf("sink got %v, want the QR event", got)
	}
	select {
	case <-freed:
		t.Fatal("a QR event freed memory")
	case <-time.After(50 * time.Millisecond):
	}

	w = Worker{Worker: session{events: []*pb.Event{qr, connected}}, S: s}
	if err := w.Events(context.Background(), func(*pb.Event) error { return nil }); err != nil {
		t.Fatal(err)
	}
	waitFree(t, freed)

	if _, err := w.SendText(context.Background(), &pb.SendTextRequest{}); err != nil {
		t.Fatal(err)
	}
	waitFree(t, freed)
}
