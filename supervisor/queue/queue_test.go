package queue

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func cfg() Config {
	return Config{MaxLive: 5, Gap: 2 * time.Second, JitterMin: time.Second, JitterMax: 3 * time.Second}
}

func noJitter(min, max time.Duration) time.Duration { return 0 }

func tk(org string) Ticket { return Ticket{Org: org, N: 1, Egress: "direct"} }

// admitAll starts everything it can, the way the fleet does: wait until At,
// spawn, Started; it returns the admitted tickets and their At values.
func admitAll(t *testing.T, q *Queue, now time.Time) ([]string, []time.Time, time.Time) {
	t.Helper()
	var orgs []string
	var ats []time.Time
	for {
		tick, at, ok := q.Next(now)
		if !ok {
			return orgs, ats, now
		}
		if at.Before(now) {
			t.Fatalf("%v admitted at %v, before now %v", tick, at, now)
		}
		if _, _, again := q.Next(at); again {
			t.Fatalf("second admission while %v is in flight", tick)
		}
		orgs, ats = append(orgs, tick.Org), append(ats, at)
		now = at.Add(500 * time.Millisecond)
		q.Started(tick)
	}
}

func TestSevenOrgsFiveSlots(t *testing.T) {
	q := New(cfg(), nil)
	var all []string
	for i := 1; i <= 7; i++ {
		org := fmt.Sprint("org", i)
		all = append(all, org)
		if !q.Request(tk(org)) {
			t.Fatalf("Request(%s) = false", org)
		}
	}
	orgs, ats, now := admitAll(t, q, t0)
	if !slices.Equal(orgs, all[:5]) {
		t.Fatalf("admitted %v, want %v", orgs, all[:5])
	}
	if live(q) != 5 || q.Depth() != 2 {
		t.Fatalf("live %d depth %d", live(q), q.Depth())
	}
	if d := ats[0].Sub(t0); d < time.Second || d > 3*time.Second {
		t.Errorf("first start jitter %v outside [1s, 3s]", d)
	}
	for i := 1; i < len(ats); i++ {
		if d := ats[i].Sub(ats[i-1]); d < 3*time.Second || d > 5*time.Second {
			t.Errorf("start %d came %v after the previous one, want in [gap+1s, gap+3s]", i, d)
		}
	}
	q.Cancel(tk("org3"))
	if q.Holds(tk("org3")) || live(q) != 4 {
		t.Fatalf("org3 still holds a slot: live %d", live(q))
	}
	later := now.Add(time.Hour)
	next, at, ok := q.Next(later)
	if !ok || next.Org != "org6" {
		t.Fatalf("Next = %v, %v; want org6", next, ok)
	}
	if at.Before(later.Add(time.Second)) || at.After(later.Add(3*time.Second)) {
		t.Errorf("org6 at %v, want now + jitter", at)
	}
	q.Started(next)
	if _, _, ok := q.Next(later.Add(time.Hour)); ok {
		t.Fatal("org7 admitted with all five slots taken")
	}
}

// The slot of a start that finished stays taken until Cancel: a worker
// counts against the cap until its process has been reaped.
func TestStartedKeepsTheSlot(t *testing.T) {
	q := New(Config{MaxLive: 1}, noJitter)
	q.Request(tk("a"))
	q.Request(tk("b"))
	a, _, _ := q.Next(t0)
	q.Started(a)
	if _, _, ok := q.Next(t0.Add(time.Hour)); ok {
		t.Fatal("b admitted while a still holds the only slot")
	}
	q.Cancel(a)
	if b, _, ok := q.Next(t0.Add(time.Hour)); !ok || b.Org != "b" {
		t.Fatalf("after a's slot came back: %v %v", b, ok)
	}
}

func TestGapAppliesFromPreviousAt(t *testing.T) {
	q := New(Config{MaxLive: 5, Gap: 10 * time.Second}, noJitter)
	q.Request(tk("a"))
	q.Request(tk("b"))
	a, at1, _ := q.Next(t0)
	q.Started(a)
	_, at2, ok := q.Next(t0.Add(time.Second))
	if !ok || at2.Sub(at1) != 10*time.Second {
		t.Fatalf("b at %v after a, want 10s (ok=%v)", at2.Sub(at1), ok)
	}
}

// A start that began late (its runner was busy) pushes the next one back:
// the gap holds between real spawns.
func TestGapCountsFromTheRealSpawn(t *testing.T) {
	q := New(Config{MaxLive: 5, Gap: 10 * time.Second}, noJitter)
	q.Request(tk("a"))
	q.Request(tk("b"))
	a, at1, _ := q.Next(t0)
	q.Spawned(a, at1.Add(3*time.Second))
	q.Spawned(tk("stale"), at1.Add(time.Hour))
	q.Started(a)
	_, at2, _ := q.Next(t0)
	if want := at1.Add(13 * time.Second); !at2.Equal(want) {
		t.Fatalf("b at %v, want %v", at2, want)
	}
}

func TestGapSurvivesFailedStart(t *testing.T) {
	q := New(Config{MaxLive: 5, Gap: 10 * time.Second}, noJitter)
	q.Request(tk("a"))
	q.Request(tk("b"))
	a, at1, _ := q.Next(t0)
	q.Cancel(a)
	_, at2, _ := q.Next(t0)
	if at2.Sub(at1) != 10*time.Second {
		t.Fatalf("b %v after a failed start, want the full gap", at2.Sub(at1))
	}
}

func TestJitterGetsTheConfiguredRange(t *testing.T) {
	var gotMin, gotMax time.Duration
	q := New(cfg(), func(min, max time.Duration) time.Duration {
		gotMin, gotMax = min, max
		return 1500 * time.Millisecond
	})
	q.Request(tk("a"))
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

func TestRequestIsIdempotent(t *testing.T) {
	q := New(cfg(), nil)
	if !q.Request(tk("a")) || q.Request(tk("a")) {
		t.Fatal("second Request of a waiting ticket was accepted")
	}
	a, _, _ := q.Next(t0)
	if q.Request(a) {
		t.Fatal("Request of the admitted ticket was accepted")
	}
	q.Started(a)
	if q.Request(a) {
		t.Fatal("Request of a ticket holding a slot was accepted")
	}
	q.Cancel(a)
	if !q.Request(a) {
		t.Fatal("Request after Cancel was refused")
	}
}

func TestCancelWaitingKeepsTheOrder(t *testing.T) {
	q := New(cfg(), nil)
	for _, o := range []string{"a", "b", "c"} {
		q.Request(tk(o))
	}
	q.Cancel(tk("b"))
	q.Cancel(tk("nobody"))
	if q.Depth() != 2 || live(q) != 0 {
		t.Fatalf("depth %d live %d, want 2 and 0", q.Depth(), live(q))
	}
	orgs, _, _ := admitAll(t, q, t0)
	if !slices.Equal(orgs, []string{"a", "c"}) {
		t.Fatalf("admitted %v, want [a c]", orgs)
	}
}

// A Started that arrives for a ticket that was cancelled (the organization
// was stopped while its start was in flight) must neither bring it back nor
// block the next admission; nor may it match a newer ticket of the same org.
func TestStaleTicketsAreIgnored(t *testing.T) {
	q := New(cfg(), noJitter)
	old := Ticket{Org: "a", N: 1}
	q.Request(old)
	q.Request(tk("b"))
	got, _, _ := q.Next(t0)
	q.Cancel(got)
	q.Started(got)
	if q.Holds(old) || live(q) != 0 {
		t.Fatal("Started resurrected a cancelled ticket")
	}
	renewed := Ticket{Org: "a", N: 2}
	q.Request(renewed)
	b, _, ok := q.Next(t0)
	if !ok || b.Org != "b" {
		t.Fatalf("Next = %v, %v; want b", b, ok)
	}
	q.Started(old)
	if _, _, ok := q.Next(t0); ok {
		t.Fatal("an old ticket's Started ended b's start in flight")
	}
	q.Started(b)
	if next, _, ok := q.Next(t0); !ok || next != renewed {
		t.Fatalf("Next = %v, %v; want the renewed ticket", next, ok)
	}
}

func TestPerEgressCapSkipsAFullEgress(t *testing.T) {
	q := New(Config{MaxLive: 10, MaxPerEgress: 2}, noJitter)
	for i, eg := range []string{"p1", "p1", "p1", "p2", "direct"} {
		q.Request(Ticket{Org: fmt.Sprint("o", i), N: 1, Egress: eg})
	}
	var got []string
	for now := t0; ; now = now.Add(time.Second) {
		tick, _, ok := q.Next(now)
		if !ok {
			break
		}
		got = append(got, tick.Org)
		q.Started(tick)
	}
	if !slices.Equal(got, []string{"o0", "o1", "o3", "o4"}) {
		t.Fatalf("admitted %v; o2 must wait for p1", got)
	}
	if q.LiveByEgress()["p1"] != 2 || q.Depth() != 1 {
		t.Fatalf("p1 live %d, depth %d", q.LiveByEgress()["p1"], q.Depth())
	}
	q.Cancel(Ticket{Org: "o0", N: 1, Egress: "p1"})
	if tick, _, ok := q.Next(t0.Add(time.Hour)); !ok || tick.Org != "o2" {
		t.Fatalf("after a p1 slot came back: %v %v", tick, ok)
	}
}

// Whatever the sequence of requests, cancels and starts, the slots in use
// never exceed the caps.
func TestCapsHoldUnderRandomOperations(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	q := New(Config{MaxLive: 3, MaxPerEgress: 2}, noJitter)
	egresses := []string{"direct", "p1", "p2"}
	var tickets []Ticket
	now := t0
	for i := range 5000 {
		switch r.IntN(4) {
		case 0:
			tk := Ticket{Org: fmt.Sprint("o", r.IntN(10)), N: uint64(i), Egress: egresses[r.IntN(3)]}
			q.Request(tk)
			tickets = append(tickets, tk)
		case 1:
			if len(tickets) > 0 {
				q.Cancel(tickets[r.IntN(len(tickets))])
			}
		case 2:
			if tick, _, ok := q.Next(now); ok {
				q.Started(tick)
			}
		case 3:
			now = now.Add(time.Second)
		}
		if live(q) > 3 {
			t.Fatalf("step %d: %d slots in use", i, live(q))
		}
		for _, eg := range egresses {
			if q.LiveByEgress()[eg] > 2 {
				t.Fatalf("step %d: %d slots on %s", i, q.LiveByEgress()[eg], eg)
			}
		}
	}
}

func TestEmpty(t *testing.T) {
	q := New(cfg(), nil)
	if _, _, ok := q.Next(t0); ok {
		t.Fatal("empty queue admitted something")
	}
	if q.Holds(Ticket{}) || q.Depth() != 0 || live(q) != 0 {
		t.Fatal("empty queue reports a ticket")
	}
}

// live is the number of slots in use host-wide, as the metrics see it.
func live(q *Queue) int {
	n := 0
	for _, on := range q.LiveByEgress() {
		n += on
	}
	return n
}

// An organization queued behind a full host showed "queued" and nothing
// else; WaitsFor says which bound holds it, the host's before its egress's.
func TestWaitsFor(t *testing.T) {
	egress := func(org, e string) Ticket { return Ticket{Org: org, N: 1, Egress: e} }
	q := New(Config{MaxLive: 3, MaxPerEgress: 1}, noJitter)
	a, b, c, d := egress("a", "x"), egress("b", "x"), egress("c", "y"), egress("d", "z")
	steps := []struct {
		when string
		do   func()
		want map[string]string
	}{
		{"a admitted, its start due", func() { q.Request(a); q.Request(b); q.Request(c); q.Next(t0) },
			map[string]string{"a": WaitGap, "b": WaitMaxPerEgress, "c": WaitTurn, "none": ""}},
		{"a started, c admitted past b", func() { q.Started(a); q.Next(t0) },
			map[string]string{"a": "", "b": WaitMaxPerEgress, "c": WaitGap}},
		{"c started, d admitted: the host is full", func() { q.Started(c); q.Request(d); q.Next(t0) },
			map[string]string{"b": WaitMaxLive, "c": "", "d": WaitGap}},
		{"a gone while d's start is in flight", func() { q.Cancel(a); q.Next(t0) },
			map[string]string{"a": "", "b": WaitTurn, "d": WaitGap}},
		{"d started, b admitted", func() { q.Started(d); q.Next(t0) },
			map[string]string{"b": WaitGap, "d": ""}},
	}
	for _, s := range steps {
		s.do()
		for org, want := range s.want {
			if got := q.WaitsFor(org); got != want {
				t.Errorf("%s: %s waits for %q, want %q", s.when, org, got, want)
			}
		}
	}
}
