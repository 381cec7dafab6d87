package parentwatch

import (
	"context"
	"testing"
	"time"
)

func TestOrphaned(t *testing.T) {
	cases := []struct {
		initial, current int
		want             bool
	}{
		{4242, 4242, false},
		{4242, 1, true},   // reparented to init
		{4242, 977, true}, // reparented to a subreaper (systemd --user, tini)
	}
	for _, c := range cases {
		if got := Orphaned(c.initial, c.current); got != c.want {
			t.Errorf("Orphaned(%d, %d) = %v, want %v", c.initial, c.current, got, c.want)
		}
	}
}

func TestWatchFiresOnceWhenParentChanges(t *testing.T) {
	// Each check reads its answer from the test, so the test knows which
	// tick saw which parent: taking a tick alone does not mean the check
	// that follows it has run (a parent that changed right after a tick was
	// taken once made that tick fire and left the next send blocked).
	answers := make(chan int)
	tick := make(chan time.Time)
	fired := make(chan struct{}, 2)
	done := make(chan struct{})
	go func() {
		Watch(context.Background(), 4242, func() int { return <-answers }, tick, func() { fired <- struct{}{} })
		close(done)
	}()

	for range 3 {
		tick <- time.Time{}
		answers <- 4242
	}
	tick <- time.Time{}
	select {
	case <-fired:
		t.Fatal("fired while the parent was alive")
	default:
	}
	answers <- 1
	<-done
	if len(fired) != 1 {
		t.Fatalf("onOrphan ran %d times, want 1", len(fired))
	}
}

func TestWatchStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Watch(ctx, 4242, func() int { return 1 }, nil, func() { t.Error("fired after cancel") })
		close(done)
	}()
	cancel()
	<-done
}
