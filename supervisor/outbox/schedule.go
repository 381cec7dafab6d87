package outbox

import (
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
)

// Schedule is one organization's sending calendar: how many messages a
// local day takes, and when broadcasts keep quiet. Its methods are pure
// and take the time as a parameter.
type Schedule struct {
	// DailyLimit is the messages of one local day; 0 = no limit (and no
	// warm-up, which ramps towards it).
	DailyLimit int
	// WarmupDays is how many local days a newly linked number takes to
	// reach DailyLimit from WarmupFirstDay; 0 = off.
	WarmupDays     int
	WarmupFirstDay int
	Quiet          config.QuietHours
	Zone           *time.Location
}

// NewSchedule is cfg's schedule in zone.
func NewSchedule(cfg config.Messages, zone *time.Location) Schedule {
	// Validate has parsed quiet_hours already.
	q, _ := config.ParseQuietHours(cfg.QuietHours)
	return Schedule{DailyLimit: cfg.DailyLimit, WarmupDays: cfg.WarmupDays, WarmupFirstDay: cfg.WarmupFirstDay, Quiet: q, Zone: zone}
}

func (s Schedule) zone() *time.Location {
	if s.Zone == nil {
		return time.UTC
	}
	return s.Zone
}

// LocalDay returns the start of the local day holding t and the start of
// the next one: 24 hours apart, 23 or 25 on a day the clocks change.
func (s Schedule) LocalDay(t time.Time) (start, end time.Time) {
	y, m, d := t.In(s.zone()).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, s.zone()), time.Date(y, m, d+1, 0, 0, 0, 0, s.zone())
}

// dayNumber is which local day t is for a number first linked at first:
// 1 on the day of the link. Calendar dates, not 24-hour periods, so that a
// DST change does not shift it.
func (s Schedule) dayNumber(first, t time.Time) int {
	civil := func(t time.Time) time.Time {
		y, m, d := t.In(s.zone()).Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	return int(civil(t).Sub(civil(first))/(24*time.Hour)) + 1
}

// Limit is how many messages the local day holding t takes for a number
// first linked at firstLink (zero: links now); 0 = no limit. The warm-up
// rises linearly from WarmupFirstDay on day 1 to DailyLimit on day
// WarmupDays.
func (s Schedule) Limit(t, firstLink time.Time) int {
	if s.DailyLimit <= 0 {
		return 0
	}
	if s.WarmupDays <= 0 || s.WarmupFirstDay >= s.DailyLimit {
		return s.DailyLimit
	}
	n := 1
	if !firstLink.IsZero() {
		n = max(1, s.dayNumber(firstLink, t))
	}
	if n >= s.WarmupDays {
		return s.DailyLimit
	}
	return s.WarmupFirstDay + (s.DailyLimit-s.WarmupFirstDay)*(n-1)/(s.WarmupDays-1)
}

// quietUntil reports whether t is inside the quiet hours and, if so, when
// they end.
func (s Schedule) quietUntil(t time.Time) (bool, time.Time) {
	if !s.Quiet.Set {
		return false, time.Time{}
	}
	lt := t.In(s.zone())
	m := lt.Hour()*60 + lt.Minute()
	inside := s.Quiet.Start <= m && m < s.Quiet.End
	if s.Quiet.Start > s.Quiet.End {
		inside = m >= s.Quiet.Start || m < s.Quiet.End
	}
	if !inside {
		return false, time.Time{}
	}
	y, mo, d := lt.Date()
	end := time.Date(y, mo, d, s.Quiet.End/60, s.Quiet.End%60, 0, 0, s.zone())
	if !end.After(t) {
		end = time.Date(y, mo, d+1, s.Quiet.End/60, s.Quiet.End%60, 0, 0, s.zone())
	}
	return true, end
}

// Window is what an organization may send at one moment.
type Window struct {
	Limit int // today's; 0 = no limit
	Sent  int // today's
	// Full: the limit is reached and nothing goes before Next.
	Full bool
	// Quiet: broadcast messages wait until Next; single messages go.
	Quiet bool
	// Next is when what waits may go again; zero when nothing waits.
	Next time.Time
}

// At decides what may go at now, with sent messages counted in now's
// local day.
func (s Schedule) At(now, firstLink time.Time, sent int) Window {
	w := Window{Limit: s.Limit(now, firstLink), Sent: sent}
	if w.Limit > 0 && sent >= w.Limit {
		_, w.Next = s.LocalDay(now)
		w.Full = true
		return w
	}
	w.Quiet, w.Next = s.quietUntil(now)
	return w
}

// dayCount is the messages sent in one local day.
type dayCount struct {
	day time.Time // the local day's start
	n   int
}

// at returns the count of now's local day, starting it when a new one began.
func (c *dayCount) at(s Schedule, now time.Time) int {
	if start, _ := s.LocalDay(now); !start.Equal(c.day) {
		c.day, c.n = start, 0
	}
	return c.n
}

// SentCount is how many of an organization's messages were first sent in
// the quarter hour starting At (UTC quarters: every zone's midnight falls
// on one, so any local day is a sum of them).
type SentCount struct {
	At time.Time
	N  int
}

// sentIn sums the quarters inside the local day holding now.
func (s Schedule) sentIn(quarters []SentCount, now time.Time) int {
	start, end := s.LocalDay(now)
	n := 0
	for _, q := range quarters {
		if !q.At.Before(start) && q.At.Before(end) {
			n += q.N
		}
	}
	return n
}

// jidPhone is the phone number of a device JID ("573007915262:12@s.whatsapp.net").
func jidPhone(jid string) string {
	user, _, _ := strings.Cut(jid, "@")
	user, _, _ = strings.Cut(user, ":")
	user, _, _ = strings.Cut(user, ".")
	return user
}
