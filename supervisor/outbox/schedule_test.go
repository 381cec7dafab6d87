package outbox

import (
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	z, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func at(t *testing.T, z *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, z)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScheduleLimitRampsOverLocalDays(t *testing.T) {
	bog, ber := zone(t, "America/Bogota"), zone(t, "Europe/Berlin")
	ramp := Schedule{DailyLimit: 1000, WarmupDays: 14, WarmupFirstDay: 30}
	cases := []struct {
		name      string
		s         Schedule
		z         *time.Location
		first, at string
		want      int
	}{
		{"first day", ramp, bog, "2026-03-10 09:00", "2026-03-10 23:59", 30},
		{"a minute after local midnight is day 2", ramp, bog, "2026-03-10 23:59", "2026-03-11 00:01", 30 + 970/13},
		{"day 7", ramp, bog, "2026-03-10 09:00", "2026-03-16 12:00", 30 + 970*6/13},
		{"day warmup_days reaches the limit", ramp, bog, "2026-03-10 09:00", "2026-03-23 00:00", 1000},
		{"after the warm-up", ramp, bog, "2026-03-10 09:00", "2026-06-01 00:00", 1000},
		{"across the spring DST change: calendar days", ramp, ber, "2026-03-28 23:30", "2026-03-29 23:30", 30 + 970/13},
		{"across the autumn DST change", ramp, ber, "2026-10-24 23:30", "2026-10-26 00:30", 30 + 970*2/13},
		{"unknown link: the first day", ramp, bog, "", "2026-03-10 12:00", 30},
		{"warm-up off", Schedule{DailyLimit: 1000, WarmupFirstDay: 30}, bog, "2026-03-10 09:00", "2026-03-10 10:00", 1000},
		{"no limit", Schedule{WarmupDays: 14, WarmupFirstDay: 30}, bog, "2026-03-10 09:00", "2026-03-10 10:00", 0},
		{"first day above the limit", Schedule{DailyLimit: 10, WarmupDays: 14, WarmupFirstDay: 30}, bog, "2026-03-10 09:00", "2026-03-10 10:00", 10},
		{"one warm-up day", Schedule{DailyLimit: 100, WarmupDays: 1, WarmupFirstDay: 5}, bog, "2026-03-10 09:00", "2026-03-10 10:00", 100},
	}
	for _, c := range cases {
		c.s.Zone = c.z
		var first time.Time
		if c.first != "" {
			first = at(t, c.z, c.first)
		}
		if got := c.s.Limit(at(t, c.z, c.at), first); got != c.want {
			t.Errorf("%s: limit %d, want %d", c.name, got, c.want)
		}
	}
}

func TestScheduleLocalDayHasDSTLengths(t *testing.T) {
	cases := []struct {
		zone, at string
		want     time.Duration
	}{
		{"Europe/Berlin", "2026-03-29 12:00", 23 * time.Hour},
		{"Europe/Berlin", "2026-10-25 01:00", 25 * time.Hour},
		{"Europe/Berlin", "2026-10-26 01:00", 24 * time.Hour},
		{"America/New_York", "2026-03-08 05:00", 23 * time.Hour},
		{"America/Bogota", "2026-03-08 05:00", 24 * time.Hour},
	}
	for _, c := range cases {
		z := zone(t, c.zone)
		start, end := Schedule{Zone: z}.LocalDay(at(t, z, c.at))
		if end.Sub(start) != c.want || start.In(z).Hour() != 0 || end.In(z).Hour() != 0 {
			t.Errorf("%s %s: day %s..%s (%s), want %s", c.zone, c.at, start, end, end.Sub(start), c.want)
		}
	}
}

func TestScheduleWindow(t *testing.T) {
	bog, ber := zone(t, "America/Bogota"), zone(t, "Europe/Berlin")
	night, _ := config.ParseQuietHours("21:00-08:00")
	noon, _ := config.ParseQuietHours("12:00-14:00")
	dst, _ := config.ParseQuietHours("01:00-03:00")
	s := func(z *time.Location, q config.QuietHours, limit int) Schedule {
		return Schedule{DailyLimit: limit, Quiet: q, Zone: z}
	}
	cases := []struct {
		name      string
		s         Schedule
		z         *time.Location
		at        string
		sent      int
		wantFull  bool
		wantQuiet bool
		wantNext  string // local; "" = zero
	}{
		{"open", s(bog, night, 10), bog, "2026-03-10 20:59", 0, false, false, ""},
		{"quiet before midnight ends the next morning", s(bog, night, 10), bog, "2026-03-10 21:00", 0, false, true, "2026-03-11 08:00"},
		{"quiet after midnight ends this morning", s(bog, night, 10), bog, "2026-03-11 07:59", 0, false, true, "2026-03-11 08:00"},
		{"the window's end is open", s(bog, night, 10), bog, "2026-03-11 08:00", 0, false, false, ""},
		{"a window inside a day", s(bog, noon, 10), bog, "2026-03-11 13:59", 0, false, true, "2026-03-11 14:00"},
		{"after a window inside a day", s(bog, noon, 10), bog, "2026-03-11 14:00", 0, false, false, ""},
		{"the limit holds until local midnight", s(bog, night, 10), bog, "2026-03-11 10:00", 10, true, false, "2026-03-12 00:00"},
		{"the limit wins over quiet hours", s(bog, night, 10), bog, "2026-03-11 22:00", 10, true, false, "2026-03-12 00:00"},
		{"no limit is never full", s(bog, noQuiet, 0), bog, "2026-03-11 10:00", 5000, false, false, ""},
		{"the limit on a 23-hour day", s(ber, noQuiet, 10), ber, "2026-03-29 00:30", 10, true, false, "2026-03-30 00:00"},
		{"quiet hours across the autumn change last an hour more", s(ber, dst, 10), ber, "2026-10-25 01:30", 0, false, true, "2026-10-25 03:00"},
	}
	for _, c := range cases {
		now := at(t, c.z, c.at)
		w := c.s.At(now, now, c.sent)
		var next time.Time
		if c.wantNext != "" {
			next = at(t, c.z, c.wantNext)
		}
		if w.Full != c.wantFull || w.Quiet != c.wantQuiet || !w.Next.Equal(next) {
			t.Errorf("%s: %+v, want full %v quiet %v next %s", c.name, w, c.wantFull, c.wantQuiet, next)
		}
	}
	z := ber
	start := at(t, z, "2026-10-25 01:30")
	_, w := s(z, dst, 0).quietUntil(start)
	if got := w.Sub(start); got != 150*time.Minute {
		t.Errorf("01:30 to 03:00 on the autumn change is %s, want 2h30m", got)
	}
}

// noQuiet is no quiet window.
var noQuiet = config.QuietHours{}

func TestScheduleCountsTheLocalDay(t *testing.T) {
	kat := zone(t, "Asia/Kathmandu") // +05:45: its midnight is a UTC quarter hour
	s := Schedule{Zone: kat}
	now := at(t, kat, "2026-03-11 00:10")
	q := func(local string, n int) SentCount { return SentCount{At: at(t, kat, local).UTC(), N: n} }
	got := s.sentIn([]SentCount{q("2026-03-10 23:45", 4), q("2026-03-11 00:00", 2), q("2026-03-11 00:00", 1)}, now)
	if got != 3 {
		t.Errorf("sent today %d, want 3", got)
	}
	var c dayCount
	c.n = 7
	c.day, _ = s.LocalDay(now)
	if c.at(s, now.Add(23*time.Hour)) != 7 || c.at(s, now.Add(24*time.Hour)) != 0 {
		t.Error("the count did not start again at local midnight")
	}
	if jidPhone("573007915262:12@s.whatsapp.net") != "573007915262" || jidPhone("573007915262@s.whatsapp.net") != "573007915262" {
		t.Error("jidPhone")
	}
}

func TestYieldHeldGivesTheTurnUp(t *testing.T) {
	jobs := []JobView{
		{ID: "a", Org: "quiet", Status: JobSending},
		{ID: "b", Org: "open", Status: JobSending},
		{ID: "c", Org: "quiet", Status: JobQueued},
		{ID: "d", Org: "quiet", Status: JobStalled},
	}
	rest, changes := yieldHeld(jobs, map[string]bool{"quiet": true})
	if len(changes) != 1 || changes[0] != (JobChange{ID: "a", Status: JobQueued}) {
		t.Fatalf("changes %v, want only the held sending job queued", changes)
	}
	if len(rest) != 4 || rest[0].Status != JobQueued || rest[1].Status != JobSending || rest[3].Status != JobStalled {
		t.Fatalf("jobs after %v", rest)
	}
	if jobs[0].Status != JobSending {
		t.Fatal("yieldHeld changed its input")
	}
}
