package badmac

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// policy is the default [badmac] configuration with the default logout
// cooldown as the storm's floor.
func policy() Policy {
	return Policy{
		Limit:            5,
		MinSenders:       1,
		ResetAfter:       60 * time.Second,
		RestartDelay:     2 * time.Second,
		StormTrips:       3,
		StormWindow:      time.Hour,
		StormMinWait:     5 * time.Minute,
		StormMaxCooldown: time.Hour,
	}
}

var ids int

// burst feeds n errors with fresh message IDs one second apart from start
// and returns the time of the last one and the last outcome.
func burst(t *testing.T, p Policy, c *Counter, start time.Time, n int) (time.Time, Outcome) {
	t.Helper()
	var out Outcome
	now := start
	for i := range n {
		now = start.Add(time.Duration(i) * time.Second)
		ids++
		*c, out = p.Observe(*c, fmt.Sprint("m", ids), "573001112222@s.whatsapp.net", now)
		if out.Tripped && i != n-1 {
			t.Fatalf("tripped at error %d of %d", i+1, n)
		}
	}
	return now, out
}

func TestFourErrorsDoNotTrip(t *testing.T) {
	p, c := policy(), Counter{}
	last, out := burst(t, p, &c, t0, 4)
	if out.Tripped || !out.Counted || c.Count != 4 || p.Current(c, last) != 4 || !c.LastErrorAt.Equal(last) {
		t.Fatalf("outcome %+v counter %+v", out, c)
	}
}

func TestQuietGapResetsTheCount(t *testing.T) {
	p, c := policy(), Counter{}
	last, _ := burst(t, p, &c, t0, 4)
	if got := p.Current(c, last.Add(60*time.Second)); got != 4 {
		t.Errorf("exactly reset_after later: Current = %d, want 4", got)
	}
	if got := p.Current(c, last.Add(61*time.Second)); got != 0 {
		t.Errorf("after reset_after: Current = %d, want 0", got)
	}
	_, out := burst(t, p, &c, last.Add(61*time.Second), 4)
	if out.Tripped || c.Count != 4 || c.TotalTrips != 0 || len(c.Recent) != 4 {
		t.Fatalf("4 + gap + 4: %+v counter %+v", out, c)
	}
}

func TestFiveErrorsTrip(t *testing.T) {
	p, c := policy(), Counter{}
	last, out := burst(t, p, &c, t0, 5)
	if !out.Tripped || out.Wait != 2*time.Second {
		t.Fatalf("outcome %+v", out)
	}
	if c.Count != 0 || c.Recent != nil || c.TotalTrips != 1 || len(c.Trips) != 1 || !c.Trips[0].Equal(last) {
		t.Fatalf("counter after trip %+v", c)
	}
	if _, out := burst(t, p, &c, last.Add(time.Second), 1); out.Tripped || c.Count != 1 {
		t.Fatalf("after trip: %+v count=%d", out, c.Count)
	}
}

// whatsmeow asks the sender to retry an undecryptable message up to four
// times; every failed retry arrives with the same message ID.
func TestRetriesOfOneMessageCountOnce(t *testing.T) {
	p, c := policy(), Counter{}
	var out Outcome
	for i := range 5 {
		c, out = p.Observe(c, "3EB0AAA", "a@s.whatsapp.net", t0.Add(time.Duration(i)*time.Second))
		if out.Counted != (i == 0) || out.Tripped {
			t.Fatalf("attempt %d: %+v", i+1, out)
		}
	}
	if c.Count != 1 {
		t.Fatalf("one message retried five times counted %d", c.Count)
	}
	// After the reset the same ID is a new error again.
	if c, out = p.Observe(c, "3EB0AAA", "a@s.whatsapp.net", t0.Add(2*time.Minute)); !out.Counted || c.Count != 1 {
		t.Fatalf("after the reset: %+v count %d", out, c.Count)
	}
}

func TestMessagesWithoutIDAlwaysCount(t *testing.T) {
	p, c := policy(), Counter{}
	var out Outcome
	for i := range 5 {
		c, out = p.Observe(c, "", "a", t0.Add(time.Duration(i)*time.Second))
	}
	if !out.Tripped {
		t.Fatalf("five errors without an ID did not trip: %+v", c)
	}
}

func TestMinSendersWaitsForAnotherSender(t *testing.T) {
	p, c := policy(), Counter{}
	p.MinSenders = 2
	var out Outcome
	for i := range 7 {
		c, out = p.Observe(c, fmt.Sprint("x", i), "a", t0.Add(time.Duration(i)*time.Second))
		if out.Tripped {
			t.Fatalf("one sender tripped with min_senders 2 at error %d", i+1)
		}
	}
	c, out = p.Observe(c, "y", "b", t0.Add(8*time.Second))
	if !out.Tripped {
		t.Fatalf("a second sender did not trip: %+v", c)
	}
}

func TestRecentIsBounded(t *testing.T) {
	p, c := policy(), Counter{}
	p.MinSenders = 2
	for i := range 500 {
		c, _ = p.Observe(c, fmt.Sprint("z", i), "a", t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(c.Recent) != maxRecent || c.Count != 500 {
		t.Fatalf("recent %d count %d", len(c.Recent), c.Count)
	}
}

func TestStormWaitsAtLeastTheCooldownAndDoubles(t *testing.T) {
	p, c := policy(), Counter{}
	want := []time.Duration{
		2 * time.Second, 2 * time.Second, // below storm_trips
		5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour,
	}
	now := t0
	for i, w := range want {
		var out Outcome
		now, out = burst(t, p, &c, now, 5)
		if !out.Tripped || out.Wait != w {
			t.Fatalf("trip %d: %+v, want wait %v", i+1, out, w)
		}
		now = now.Add(time.Minute)
	}
	if c.TotalTrips != len(want) || len(c.Trips) != len(want) {
		t.Fatalf("total %d, in window %d", c.TotalTrips, len(c.Trips))
	}
}

func TestManualTripsFeedTheStorm(t *testing.T) {
	p, c := policy(), Counter{}
	var wait time.Duration
	for i := range 3 {
		c, wait = p.Trip(c, t0.Add(time.Duration(i)*time.Minute))
	}
	if wait != 5*time.Minute || c.TotalTrips != 3 {
		t.Fatalf("third manual trip waits %v (counter %+v)", wait, c)
	}
}

func TestWindowExpiryEndsTheStorm(t *testing.T) {
	p, c := policy(), Counter{}
	now := t0
	for range 4 {
		now, _ = burst(t, p, &c, now, 5)
		now = now.Add(time.Second)
	}
	if got := p.StormEnds(c); !got.Equal(now.Add(-time.Second).Add(time.Hour)) {
		t.Fatalf("storm ends %v", got)
	}
	now = now.Add(time.Hour)
	_, out := burst(t, p, &c, now, 5)
	if out.Wait != 2*time.Second || len(c.Trips) != 1 || c.TotalTrips != 5 {
		t.Fatalf("after the window: %+v, counter %+v", out, c)
	}
}

func TestPartialWindowExpiry(t *testing.T) {
	p, c := policy(), Counter{}
	for _, at := range []time.Duration{0, 30 * time.Minute, 50 * time.Minute} {
		burst(t, p, &c, t0.Add(at), 5)
	}
	// At 70m the first trip has left the window, two remain: the third in
	// the window is again the storm's first step.
	_, out := burst(t, p, &c, t0.Add(70*time.Minute), 5)
	if out.Wait != 5*time.Minute || len(c.Trips) != 3 {
		t.Fatalf("%+v, trips in window %d", out, len(c.Trips))
	}
}

func TestCapBelowTheFloor(t *testing.T) {
	p := policy()
	p.StormMaxCooldown = time.Minute
	c := Counter{Trips: []time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Minute)}}
	_, out := burst(t, p, &c, t0.Add(3*time.Minute), 5)
	if !out.Tripped || out.Wait != 5*time.Minute {
		t.Fatalf("%+v, want the logout cooldown as the floor", out)
	}
}

func TestObserveLeavesItsInputAlone(t *testing.T) {
	p, c := policy(), Counter{}
	burst(t, p, &c, t0, 5)
	burst(t, p, &c, t0.Add(10*time.Minute), 3)
	before := c
	trips := append([]time.Time(nil), c.Trips...)
	recent := append([]Error(nil), c.Recent...)
	p.Observe(c, "new", "b", t0.Add(10*time.Minute+5*time.Second))
	p.Trip(c, t0.Add(90*time.Minute))
	for i := range trips {
		if !before.Trips[i].Equal(trips[i]) {
			t.Fatalf("input's trips changed: %v, want %v", before.Trips, trips)
		}
	}
	for i := range recent {
		if before.Recent[i] != recent[i] {
			t.Fatalf("input's recent errors changed: %v, want %v", before.Recent, recent)
		}
	}
}

func TestCounterJSONRoundTrip(t *testing.T) {
	p, c := policy(), Counter{}
	for i := range 3 {
		burst(t, p, &c, t0.Add(time.Duration(i)*time.Minute), 5)
	}
	c, _ = p.Observe(c, "half", "a", t0.Add(4*time.Minute))
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Counter
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Count != 1 || back.TotalTrips != 3 || len(back.Trips) != 3 || len(back.Recent) != 1 || !back.LastErrorAt.Equal(c.LastErrorAt) {
		t.Fatalf("round trip %+v from %s", back, b)
	}
	// A restored counter keeps the half-full count, the IDs and the storm.
	if _, out := p.Observe(back, "half", "a", t0.Add(4*time.Minute+time.Second)); out.Counted {
		t.Fatal("a restored counter counted a known message ID again")
	}
	_, out := burst(t, p, &back, t0.Add(4*time.Minute+time.Second), 4)
	if !out.Tripped || out.Wait != 10*time.Minute {
		t.Fatalf("restored storm: %+v, want a trip waiting 10m", out)
	}
}

// A counter saved by an earlier version (with last_wait, without recent)
// still loads.
func TestCounterFromAnEarlierVersion(t *testing.T) {
	var c Counter
	old := `{"count":2,"last_error_at":"2025-03-01T12:00:00Z","trips":["2025-03-01T11:30:00Z"],"total_trips":4,"last_wait":2000000000}`
	if err := json.Unmarshal([]byte(old), &c); err != nil {
		t.Fatal(err)
	}
	if c.Count != 2 || c.TotalTrips != 4 || len(c.Trips) != 1 {
		t.Fatalf("%+v", c)
	}
}
