package badmac

import (
	"encoding/json"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// policy is the default [badmac] configuration.
func policy() Policy {
	return Policy{
		Limit:            5,
		ResetAfter:       60 * time.Second,
		RestartDelay:     2 * time.Second,
		StormTrips:       3,
		StormWindow:      time.Hour,
		StormMaxCooldown: time.Hour,
	}
}

// burst feeds n errors one second apart starting at start and returns the
// time of the last one and whether and how the last one tripped.
func burst(p Policy, c *Counter, start time.Time, n int) (time.Time, bool, time.Duration) {
	var tripped bool
	var wait time.Duration
	now := start
	for i := range n {
		now = start.Add(time.Duration(i) * time.Second)
		tripped, wait = p.Observe(c, now)
		if tripped && i != n-1 {
			panic("tripped before the end of the burst")
		}
	}
	return now, tripped, wait
}

func TestFourErrorsDoNotTrip(t *testing.T) {
	p, c := policy(), Counter{}
	last, tripped, _ := burst(p, &c, t0, 4)
	if tripped || c.Count != 4 || p.Current(c, last) != 4 || !c.LastErrorAt.Equal(last) {
		t.Fatalf("tripped=%v counter %+v", tripped, c)
	}
}

func TestQuietGapResetsTheCount(t *testing.T) {
	p, c := policy(), Counter{}
	last, _, _ := burst(p, &c, t0, 4)
	if got := p.Current(c, last.Add(60*time.Second)); got != 4 {
		t.Errorf("exactly reset_after later: Current = %d, want 4", got)
	}
	if got := p.Current(c, last.Add(61*time.Second)); got != 0 {
		t.Errorf("after reset_after: Current = %d, want 0", got)
	}
	_, tripped, _ := burst(p, &c, last.Add(61*time.Second), 4)
	if tripped || c.Count != 4 || c.TotalTrips != 0 {
		t.Fatalf("4 + gap + 4 tripped=%v counter %+v", tripped, c)
	}
}

func TestErrorsJustInsideResetAfterAccumulate(t *testing.T) {
	p, c := policy(), Counter{}
	now := t0
	for i := range 5 {
		tripped, _ := p.Observe(&c, now)
		if tripped != (i == 4) {
			t.Fatalf("error %d tripped=%v", i+1, tripped)
		}
		now = now.Add(60 * time.Second)
	}
}

func TestFiveErrorsTrip(t *testing.T) {
	p, c := policy(), Counter{}
	last, tripped, wait := burst(p, &c, t0, 5)
	if !tripped || wait != 2*time.Second {
		t.Fatalf("tripped=%v wait=%v", tripped, wait)
	}
	if c.Count != 0 || p.Current(c, last) != 0 || c.TotalTrips != 1 || len(c.Trips) != 1 || !c.Trips[0].Equal(last) {
		t.Fatalf("counter after trip %+v", c)
	}
	// The next error starts a fresh count.
	if tripped, _ := p.Observe(&c, last.Add(time.Second)); tripped || c.Count != 1 {
		t.Fatalf("after trip: tripped=%v count=%d", tripped, c.Count)
	}
}

func TestStormDoublesUpToTheCap(t *testing.T) {
	p, c := policy(), Counter{}
	want := []time.Duration{
		2 * time.Second, 2 * time.Second, // below storm_trips
		4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second,
		64 * time.Second, 128 * time.Second, 256 * time.Second, 512 * time.Second,
		1024 * time.Second, 2048 * time.Second, time.Hour, time.Hour,
	}
	now := t0
	for i, w := range want {
		var tripped bool
		var wait time.Duration
		now, tripped, wait = burst(p, &c, now, 5)
		if !tripped || wait != w {
			t.Fatalf("trip %d: tripped=%v wait=%v, want %v", i+1, tripped, wait, w)
		}
		// Trips come a minute apart so all stay in the window.
		now = now.Add(time.Minute)
	}
	if c.TotalTrips != len(want) || len(c.Trips) != len(want) {
		t.Fatalf("total %d, in window %d", c.TotalTrips, len(c.Trips))
	}
}

func TestWindowExpiryEndsTheStorm(t *testing.T) {
	p, c := policy(), Counter{}
	now := t0
	for range 4 {
		now, _, _ = burst(p, &c, now, 5)
		now = now.Add(time.Second)
	}
	if c.LastWait != 8*time.Second {
		t.Fatalf("storm not under way: last wait %v", c.LastWait)
	}
	// An hour of quiet: the old trips leave the window.
	now = now.Add(time.Hour)
	_, tripped, wait := burst(p, &c, now, 5)
	if !tripped || wait != 2*time.Second || len(c.Trips) != 1 || c.TotalTrips != 5 {
		t.Fatalf("after the window: wait %v, counter %+v", wait, c)
	}
	// And a new storm starts from restart_delay again, not from the old wait.
	now, _, _ = burst(p, &c, now.Add(time.Minute), 5)
	_, _, wait = burst(p, &c, now.Add(time.Minute), 5)
	if wait != 4*time.Second {
		t.Fatalf("new storm's first wait %v, want 4s", wait)
	}
}

func TestPartialWindowExpiry(t *testing.T) {
	p, c := policy(), Counter{}
	// Trips at 0, 30m, 50m: the third is a storm.
	for _, at := range []time.Duration{0, 30 * time.Minute, 50 * time.Minute} {
		burst(p, &c, t0.Add(at), 5)
	}
	if c.LastWait != 4*time.Second {
		t.Fatalf("third trip wait %v", c.LastWait)
	}
	// At 70m the first trip has left the window but two remain: still a storm.
	_, _, wait := burst(p, &c, t0.Add(70*time.Minute), 5)
	if wait != 8*time.Second || len(c.Trips) != 3 {
		t.Fatalf("wait %v, trips in window %d", wait, len(c.Trips))
	}
}

func TestCapBelowRestartDelay(t *testing.T) {
	p := policy()
	p.StormMaxCooldown = time.Second
	c := Counter{Trips: []time.Time{t0, t0.Add(time.Minute)}, LastWait: 2 * time.Second}
	_, tripped, wait := burst(p, &c, t0.Add(2*time.Minute), 5)
	if !tripped || wait != 2*time.Second {
		t.Fatalf("wait %v, want restart_delay", wait)
	}
}

func TestObserveDoesNotWriteIntoACopysTrips(t *testing.T) {
	p, c := policy(), Counter{}
	burst(p, &c, t0, 5)
	burst(p, &c, t0.Add(10*time.Minute), 5)
	snapshot := c
	old := append([]time.Time(nil), c.Trips...)
	burst(p, &c, t0.Add(90*time.Minute), 5) // prunes both old trips
	for i := range old {
		if !snapshot.Trips[i].Equal(old[i]) {
			t.Fatalf("copy's trips changed: %v, want %v", snapshot.Trips, old)
		}
	}
}

func TestCounterJSONRoundTrip(t *testing.T) {
	p, c := policy(), Counter{}
	for i := range 3 {
		burst(p, &c, t0.Add(time.Duration(i)*time.Minute), 5)
	}
	p.Observe(&c, t0.Add(4*time.Minute))
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Counter
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Count != 1 || back.TotalTrips != 3 || len(back.Trips) != 3 || back.LastWait != 4*time.Second || !back.LastErrorAt.Equal(c.LastErrorAt) {
		t.Fatalf("round trip %+v from %s", back, b)
	}
	// A restored counter keeps both the half-full count and the storm going.
	_, _, wait := burst(p, &back, t0.Add(4*time.Minute+time.Second), 4)
	if wait != 8*time.Second {
		t.Fatalf("restored storm wait %v, want 8s", wait)
	}
}
