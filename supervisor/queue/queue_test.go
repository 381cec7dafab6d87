package queue

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func cfg() Config {
	return Config{MaxLive: 5, Gap: 2 * time.Second, JitterMin: time.Second, JitterMax: 3 * time.Second}
}

// admitAll starts everything it can, the way the fleet does: wait until At,
// spawn, Started; it returns the admitted orgs and their At values.
func admitAll(t *testing.T, q *Queue, now time.Time) ([]string, []time.Time, time.Time) {
	t.Helper()
	var orgs []string
	var ats []time.Time
	for {
		org, at, ok := q.Next(now)
		if !ok {
			return orgs, ats, now
		}
		if at.Before(now) {
			t.Fatalf("%s admitted at %v, before now %v", org, at, now)
		}
		if _, _, again := q.Next(at); again {
			t.Fatalf("second admission while %s is in flight", org)
		}
		orgs, ats = append(orgs, org), append(ats, at)
		now = at.Add(500 * time.Millisecond) // the spawn takes a while
		q.Started(org)
	}
}

func TestSevenOrgsFiveSlots(t *testing.T) {
	q := New(cfg(), nil)
	var all []string
	for i := 1; i <= 7; i++ {
		org := fmt.Sprint("org", i)
		all = append(all, org)
		if !q.Push(org) {
			t.Fatalf("Push(%s) = false", org)
		}
	}
	orgs, ats, now := admitAll(t, q, t0)
	if !slices.Equal(orgs, all[:5]) {
		t.Fatalf("admitted %v, want %v", orgs, all[:5])
	}
	if q.Live() != 5 || q.Depth() != 2 {
		t.Fatalf("live %d depth %d", q.Live(), q.Depth())
	}
	if ats[0].Sub(t0) < time.Second || ats[0].Sub(t0) > 3*time.Second {
		t.Errorf("first start jitter %v outside [1s, 3s]", ats[0].Sub(t0))
	}
	for i := 1; i < len(ats); i++ {
		d := ats[i].Sub(ats[i-1])
		// Gap plus a jitter in [1s, 3s].
		if d < 3*time.Second || d > 5*time.Second {
			t.Errorf("start %d came %v after the previous one, want in [gap+1s, gap+3s]", i, d)
		}
	}
	q.Remove("org3")
	if q.IsLive("org3") || q.Live() != 4 {
		t.Fatalf("org3 still holds a slot: live %d", q.Live())
	}
	later := now.Add(time.Hour)
	org, at, ok := q.Next(later)
	if !ok || org != "org6" {
		t.Fatalf("Next = %q, %v; want org6", org, ok)
	}
	if at.Before(later.Add(time.Second)) || at.After(later.Add(3*time.Second)) {
		t.Errorf("org6 at %v, want now + jitter", at)
	}
	q.Started(org)
	if _, _, ok := q.Next(later.Add(time.Hour)); ok {
		t.Fatal("org7 admitted with all five slots taken")
	}
}

func TestGapAppliesFromPreviousAt(t *testing.T) {
	q := New(Config{MaxLive: 5, Gap: 10 * time.Second}, func(min, max time.Duration) time.Duration { return 0 })
	q.Push("a")
	q.Push("b")
	_, at1, _ := q.Next(t0)
	q.Started("a")
	// The spawn finished quickly: b must still wait for the gap.
	_, at2, ok := q.Next(t0.Add(time.Second))
	if !ok || at2.Sub(at1) != 10*time.Second {
		t.Fatalf("b at %v after a, want 10s (ok=%v)", at2.Sub(at1), ok)
	}
}

func TestGapSurvivesFailedSpawn(t *testing.T) {
	q := New(Config{MaxLive: 5, Gap: 10 * time.Second}, func(min, max time.Duration) time.Duration { return 0 })
	q.Push("a")
	q.Push("b")
	_, at1, _ := q.Next(t0)
	q.Started("a")
	q.Remove("a") // spawn failed
	_, at2, _ := q.Next(t0)
	if at2.Sub(at1) != 10*time.Second {
		t.Fatalf("b %v after a failed start, want the full gap", at2.Sub(at1))
	}
}

func TestJitterPassedTheConfiguredRange(t *testing.T) {
	var gotMin, gotMax time.Duration
	q := New(cfg(), func(min, max time.Duration) time.Duration {
		gotMin, gotMax = min, max
		return 1500 * time.Millisecond
	})
	q.Push("a")
	_, at, _ := q.Next(t0)
	if gotMin != time.Second || gotMax != 3*time.Second || at != t0.Add(1500*time.Millisecond) {
		t.Fatalf("jitter(%v, %v), at %v", gotMin, gotMax, at)
	}
}

func TestUniformJitterStaysInRange(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := uniform(time.Second, 3*time.Second)
		if d < time.Second || d > 3*time.Second {
			t.Fatalf("jitter %v outside [1s, 3s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Error("jitter is not random")
	}
	if d := uniform(2*time.Second, 2*time.Second); d != 2*time.Second {
		t.Errorf("empty range gave %v", d)
	}
}

func TestPushIdempotent(t *testing.T) {
	q := New(cfg(), nil)
	if !q.Push("a") || q.Push("a") {
		t.Fatal("second Push of a waiting org was accepted")
	}
	if q.Depth() != 1 {
		t.Fatalf("depth %d", q.Depth())
	}
	org, _, _ := q.Next(t0)
	if q.Push(org) {
		t.Fatal("Push of the admitted org was accepted")
	}
	q.Started(org)
	if q.Push(org) {
		t.Fatal("Push of a live org was accepted")
	}
	q.Remove(org)
	if !q.Push(org) {
		t.Fatal("Push after Remove was refused")
	}
}

func TestRemoveWaiting(t *testing.T) {
	q := New(cfg(), nil)
	for _, o := range []string{"a", "b", "c"} {
		q.Push(o)
	}
	q.Remove("b")
	q.Remove("nobody")
	if q.Depth() != 2 || q.Live() != 0 {
		t.Fatalf("depth %d live %d, want 2 and 0", q.Depth(), q.Live())
	}
	var order []string
	for now := t0; ; now = now.Add(time.Hour) {
		org, _, ok := q.Next(now)
		if !ok {
			break
		}
		order = append(order, org)
		q.Started(org)
	}
	if !slices.Equal(order, []string{"a", "c"}) {
		t.Fatalf("admitted %v, want [a c]", order)
	}
}

func TestRemoveAdmittedFreesTheStart(t *testing.T) {
	q := New(cfg(), nil)
	q.Push("a")
	q.Push("b")
	org, _, _ := q.Next(t0)
	q.Remove(org)
	if q.IsLive(org) || q.Live() != 0 {
		t.Fatal("removed admitted org still holds a slot")
	}
	// A Started arriving after the Remove must not bring it back.
	q.Started(org)
	if q.IsLive(org) {
		t.Fatal("Started resurrected a removed org")
	}
	if next, _, ok := q.Next(t0); !ok || next != "b" {
		t.Fatalf("Next = %q, %v; want b", next, ok)
	}
}

func TestEmpty(t *testing.T) {
	q := New(cfg(), nil)
	if _, _, ok := q.Next(t0); ok {
		t.Fatal("empty queue admitted something")
	}
	if q.IsLive("") || q.Depth() != 0 {
		t.Fatal("empty org reported present")
	}
}
