package store

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/retention"
)

// A message counts once, in the quarter hour of its first send, and the
// count outlives the message: retention may prune today's messages.
func TestSentCountsOutliveRetention(t *testing.T) {
	s := openOutbox(t)
	s.EnableEvents(false, nil)
	o := clocktest.Origin().Truncate(15 * time.Minute)
	for i := range 3 {
		m := msg(fmt.Sprintf("m%d", i), "2", fmt.Sprintf("57300000040%d", i), o)
		if _, _, err := s.InsertMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		mustSending(t, s, m.ID, o)
		if ok, err := s.MarkSent(ctx, m, o.Add(time.Duration(i)*time.Minute)); err != nil || !ok {
			t.Fatalf("sent: %v %v", ok, err)
		}
		// An ack recorded again (a resend after a lost answer) counts
		// nothing more.
		if ok, err := s.MarkSent(ctx, m, o.Add(20*time.Minute)); err != nil || ok {
			t.Fatalf("sent again: %v %v", ok, err)
		}
	}
	want := map[string][]outbox.SentCount{"2": {{At: o, N: 3}}}
	check := func(when string) {
		t.Helper()
		got, err := s.SentSince(ctx, o.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(got["2"]) != 1 || !got["2"][0].At.Equal(o) || got["2"][0].N != 3 {
			t.Fatalf("%s: sent counts %v, want %v", when, got, want)
		}
	}
	check("after the sends")
	if b, _ := pruneAll(t, s, retention.Cutoff(o.Add(time.Hour), time.Minute), 100); b.Messages != 3 {
		t.Fatalf("pruned %d messages, want 3", b.Messages)
	}
	check("after retention pruned them")
}

// A relink of the same number keeps its first day; another number starts
// its own, and is then the organization's current one.
func TestLinkNumberKeepsTheFirstDay(t *testing.T) {
	s := openOutbox(t)
	o := clocktest.Origin()
	link := func(phone string, at time.Time) time.Time {
		t.Helper()
		first, err := s.LinkNumber(ctx, "2", phone, at)
		if err != nil {
			t.Fatal(err)
		}
		return first
	}
	if first := link("573000000500", o); !first.Equal(o) {
		t.Fatalf("first link %s, want %s", first, o)
	}
	if first := link("573000000500", o.Add(48*time.Hour)); !first.Equal(o) {
		t.Fatalf("a relink moved the first day to %s", first)
	}
	if first := link("573000000501", o.Add(72*time.Hour)); !first.Equal(o.Add(72 * time.Hour)) {
		t.Fatalf("another number's first day %s", first)
	}
	got, err := s.LinkedNumbers(ctx)
	if err != nil || !got["2"].Equal(o.Add(72*time.Hour)) {
		t.Fatalf("linked numbers %v %v, want the second number's", got, err)
	}
}

// An organization linked before the warm-up was tracked keeps sending at
// the full daily limit after the upgrade: the migration that adds
// linked_numbers records its number as linked long ago. Without that, the
// first boot of the new supervisor would record it as linked that day and
// hold an established number to warmup_first_day.
func TestUpgradeKeepsLinkedNumbersOutOfWarmUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	// The schema just before linked_numbers, found by content: migrations
	// are renumbered on merges.
	adds := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "CREATE TABLE linked_numbers") })
	if adds < 0 {
		t.Fatal("no migration creates linked_numbers")
	}
	for v := 1; v < adds; v++ {
		if _, err := db.Exec(migrations[v]); err != nil {
			t.Fatalf("migration %d: %v", v, err)
		}
	}
	for _, r := range [][2]string{{"linked", "573007915262:12@s.whatsapp.net"}, {"agent", "573007915263.0:3@s.whatsapp.net"}, {"new", ""}} {
		if _, err := db.Exec(`INSERT INTO orgs (id, status, jid, added_at) VALUES (?, 'connected', ?, 1)`, r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, adds-1)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, path)
	got, err := s.LinkedNumbers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["new"] != (time.Time{}) {
		t.Fatalf("linked numbers after the upgrade: %v", got)
	}
	sch := outbox.Schedule{DailyLimit: 1000, WarmupDays: 14, WarmupFirstDay: 30}
	for _, org := range []string{"linked", "agent"} {
		if lim := sch.Limit(clocktest.Origin(), got[org]); lim != 1000 {
			t.Fatalf("%s may send %d today after the upgrade, want the full 1000", org, lim)
		}
	}
	for org, phone := range map[string]string{"linked": "573007915262", "agent": "573007915263"} {
		if first, err := s.LinkNumber(ctx, org, phone, clocktest.Origin()); err != nil || !first.Equal(got[org]) {
			t.Fatalf("%s's number relinked: first %s %v, want the seeded %s", org, first, err, got[org])
		}
	}
}
