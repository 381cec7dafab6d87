package registry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/badmac"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func regPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "state", "supervisor", "registry.json")
}

func sample() Record {
	until := t0.Add(5 * time.Minute)
	return Record{
		ID:             "68e3f605f2d61bb5556b7b20",
		Wanted:         false,
		Status:         state.LoggedOut,
		Linked:         true,
		JID:            "573007915262:12@s.whatsapp.net",
		CooldownUntil:  &until,
		CooldownReason: "logout",
		BadMAC: badmac.Counter{
			Count:       2,
			LastErrorAt: t0.Add(-time.Second),
			Trips:       []time.Time{t0.Add(-time.Minute), t0.Add(-30 * time.Second)},
			TotalTrips:  7,
			LastWait:    4 * time.Second,
		},
		FromConfig: true,
		AddedAt:    t0.Add(-time.Hour),
	}
}

func equal(t *testing.T, got, want Record) {
	t.Helper()
	ok := got.ID == want.ID && got.Wanted == want.Wanted && got.Status == want.Status &&
		got.Linked == want.Linked && got.JID == want.JID && got.CooldownReason == want.CooldownReason &&
		got.FromConfig == want.FromConfig && got.AddedAt.Equal(want.AddedAt) &&
		timePtrEqual(got.CooldownUntil, want.CooldownUntil) && timePtrEqual(got.BanUntil, want.BanUntil) &&
		got.BadMAC.Count == want.BadMAC.Count && got.BadMAC.LastErrorAt.Equal(want.BadMAC.LastErrorAt) &&
		got.BadMAC.TotalTrips == want.BadMAC.TotalTrips && got.BadMAC.LastWait == want.BadMAC.LastWait &&
		len(got.BadMAC.Trips) == len(want.BadMAC.Trips)
	for i := range min(len(got.BadMAC.Trips), len(want.BadMAC.Trips)) {
		ok = ok && got.BadMAC.Trips[i].Equal(want.BadMAC.Trips[i])
	}
	if !ok {
		t.Fatalf("record\n got %+v\nwant %+v", got, want)
	}
}

func timePtrEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func TestPersistAndReopen(t *testing.T) {
	path := regPath(t)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.All()) != 0 {
		t.Fatal("new registry not empty")
	}
	rec := sample()
	ban := t0.Add(24 * time.Hour)
	other := Record{ID: "2", Wanted: true, BanUntil: &ban, AddedAt: t0}
	for _, x := range []Record{rec, other} {
		if err := r.Put(x); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("registry file: %v, %v", fi, err)
	}

	r2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := r2.Get(rec.ID)
	if !ok {
		t.Fatal("record lost on reopen")
	}
	equal(t, got, rec)
	got, _ = r2.Get("2")
	equal(t, got, other)

	// The restored counter carries on: its half-full count and its storm.
	p := badmac.Policy{Limit: 5, ResetAfter: time.Minute, RestartDelay: 2 * time.Second, StormTrips: 3, StormWindow: time.Hour, StormMaxCooldown: time.Hour}
	got, _ = r2.Get(rec.ID)
	var tripped bool
	var wait time.Duration
	for i := range 3 {
		tripped, wait = p.Observe(&got.BadMAC, t0.Add(time.Duration(i)*time.Second))
	}
	if !tripped || wait != 8*time.Second {
		t.Fatalf("after reopen: tripped=%v wait=%v, want a storm trip waiting 8s", tripped, wait)
	}

	all := r2.All()
	if len(all) != 2 || all[0].ID != "2" || all[1].ID != rec.ID {
		t.Fatalf("All not sorted by ID: %v", all)
	}

	if err := r2.Delete("2"); err != nil {
		t.Fatal(err)
	}
	if err := r2.Delete("never-there"); err != nil {
		t.Fatal(err)
	}
	r3, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r3.Get("2"); ok || len(r3.All()) != 1 {
		t.Fatalf("delete not persisted: %v", r3.All())
	}
}

func TestPutErrorIsReturnedAndMemoryUnchanged(t *testing.T) {
	path := regPath(t)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(Record{ID: "1", Wanted: true}); err != nil {
		t.Fatal(err)
	}
	// Replace the directory with a file: unwritable even for root, which
	// permission bits would not stop.
	dir := filepath.Dir(path)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = r.Put(Record{ID: "2", Wanted: true})
	if err == nil || !strings.Contains(err.Error(), "registry") {
		t.Fatalf("Put on unwritable dir = %v, want an error", err)
	}
	if _, ok := r.Get("2"); ok {
		t.Fatal("failed Put is visible in memory")
	}
	if err := r.Delete("1"); err == nil {
		t.Fatal("Delete on unwritable dir succeeded")
	}
	if _, ok := r.Get("1"); !ok {
		t.Fatal("failed Delete removed the record from memory")
	}
}

func TestGetReturnsACopy(t *testing.T) {
	r, err := Open(regPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(sample()); err != nil {
		t.Fatal(err)
	}
	got, _ := r.Get(sample().ID)
	*got.CooldownUntil = t0.Add(time.Hour)
	got.BadMAC.Trips[0] = t0.Add(time.Hour)
	again, _ := r.Get(sample().ID)
	equal(t, again, sample())
}

func TestOpenRejectsBadFiles(t *testing.T) {
	for name, body := range map[string]string{
		"corrupt":   `{"orgs": [`,
		"bad id":    `{"orgs": [{"id": "../etc"}]}`,
		"duplicate": `{"orgs": [{"id": "2"}, {"id": "2"}]}`,
	} {
		path := regPath(t)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: Open = %v, want an error", name, err)
		}
	}
}

func TestPutRejectsInvalidID(t *testing.T) {
	r, err := Open(regPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(Record{ID: "../x"}); err == nil {
		t.Fatal("Put accepted an invalid ID")
	}
}
