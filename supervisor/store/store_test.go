package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/badmac"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

var (
	ctx = context.Background()
	t0  = time.UnixMilli(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func full() lifecycle.Record {
	return lifecycle.Record{
		ID: "68e3f605f2d61bb5556b7b20", Status: state.LoggedOut, Reason: "device_removed", Run: false,
		Linked: true, JID: "573007915262:12@s.whatsapp.net",
		Hold:    lifecycle.Hold{Until: t0.Add(5 * time.Minute), Reason: lifecycle.HoldLogout},
		BadMAC:  badmac.Counter{Count: 2, LastErrorAt: t0, Recent: []badmac.Error{{MessageID: "m1", Sender: "a"}}, Trips: []time.Time{t0.Add(-time.Minute)}, TotalTrips: 4},
		Crashes: 3, ArchivePending: lifecycle.ArchiveLoggedOut, Deleted: true,
		Fingerprint: "Chrome/Linux/6.1.0", FromConfig: true, AddedAt: t0.Add(-time.Hour),
		LastError: "start session: connect for QR pairing: dial tcp: lookup web.whatsapp.com: no such host",
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dir with space", "state.db")
	s := open(t, path)
	want := full()
	if err := s.SaveOrg(ctx, want, nil, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveOrg(ctx, lifecycle.Record{ID: "2", Status: state.Queued, Run: true}, nil, t0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	got, err := s.LoadOrgs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "2" || !got[1].Equal(want) {
		t.Fatalf("loaded %+v\nwant %+v", got, want)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state.db mode: %v %v", st.Mode(), err)
	}
}

func TestSaveReplacesAndDeleteForgets(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	r := full()
	s.SaveOrg(ctx, r, nil, t0)
	r.Status, r.Hold, r.Deleted = state.Connected, lifecycle.Hold{}, false
	r.BadMAC = badmac.Counter{}
	if err := s.SaveOrg(ctx, r, nil, t0); err != nil {
		t.Fatal(err)
	}
	got, _ := s.LoadOrgs(ctx)
	if len(got) != 1 || !got[0].Equal(r) {
		t.Fatalf("after update %+v", got)
	}
	if err := s.DeleteOrg(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadOrgs(ctx); len(got) != 0 {
		t.Fatalf("after delete %+v", got)
	}
}

func TestConcurrentWritersDoNotFail(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				errs <- s.SaveOrg(ctx, lifecycle.Record{ID: fmt.Sprintf("o%d-%d", g, i), Status: state.Queued, Run: true}, nil, t0)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.LoadOrgs(ctx); len(got) != 400 {
		t.Fatalf("%d records", len(got))
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	if _, err := s.db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "newer than this supervisor") {
		t.Fatalf("open of a newer schema: %v", err)
	}
}

func TestLegacyRecordMapping(t *testing.T) {
	until := t0.Add(time.Hour)
	cases := []struct {
		name string
		in   legacyRecord
		want lifecycle.Record
	}{
		{"wanted", legacyRecord{ID: "a", Wanted: true, Linked: true}, lifecycle.Record{ID: "a", Run: true, Status: state.Queued, Linked: true}},
		{"not wanted", legacyRecord{ID: "a"}, lifecycle.Record{ID: "a", Status: state.Stopped}},
		{"logged out with a cooldown",
			legacyRecord{ID: "a", Status: state.LoggedOut, StatusReason: "device_removed", CooldownUntil: &until, CooldownReason: "logout"},
			lifecycle.Record{ID: "a", Status: state.LoggedOut, Reason: "device_removed", Hold: lifecycle.Hold{Until: until, Reason: "logout"}}},
		{"cooldown after a trip", legacyRecord{ID: "a", Wanted: true, CooldownUntil: &until, CooldownReason: "bad_mac", ArchivePending: "corrupted"},
			lifecycle.Record{ID: "a", Run: true, Status: state.Queued, Hold: lifecycle.Hold{Until: until, Reason: "bad_mac"}, ArchivePending: "corrupted"}},
		{"banned until", legacyRecord{ID: "a", Status: state.Banned, BanUntil: &until, Linked: true},
			lifecycle.Record{ID: "a", Run: true, Status: state.Banned, Linked: true, Hold: lifecycle.Hold{Until: until, Reason: lifecycle.HoldBan}}},
		{"banned without expiry", legacyRecord{ID: "a", Status: state.Banned}, lifecycle.Record{ID: "a", Status: state.Banned}},
		{"delete interrupted", legacyRecord{ID: "a", ArchivePending: "deleted"},
			lifecycle.Record{ID: "a", Status: state.Stopped, Deleted: true, ArchivePending: "deleted"}},
	}
	for _, c := range cases {
		if got := c.in.record(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

const registryJSON = `{"orgs": [
 {"id": "2", "wanted": true, "status": "", "linked": true, "jid": "573007915262:1@s.whatsapp.net", "bad_mac": {"count": 1, "last_error_at": "2025-03-01T11:59:00Z", "trips": [], "total_trips": 2, "last_wait": 2000000000}, "from_config": true, "added_at": "2025-01-01T00:00:00Z"},
 {"id": "lo", "wanted": false, "status": "logged_out", "status_reason": "device_removed", "linked": false, "cooldown_until": "2030-01-01T00:00:00Z", "cooldown_reason": "logout", "bad_mac": {}, "added_at": "2025-01-01T00:00:00Z"}
]}`

func TestImportRegistryOnce(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "state.db"))
	reg := filepath.Join(dir, "registry.json")
	os.WriteFile(reg, []byte(registryJSON), 0o600)
	// An organization the database already has is not overwritten.
	newer := lifecycle.Record{ID: "2", Status: state.Connected, Run: true, Linked: true}
	s.SaveOrg(ctx, newer, nil, t0)

	n, aside, err := s.ImportRegistry(ctx, reg, t0)
	if err != nil || n != 2 {
		t.Fatalf("import: %d %v", n, err)
	}
	if _, err := os.Stat(reg); !os.IsNotExist(err) {
		t.Fatalf("registry.json still there: %v", err)
	}
	if _, err := os.Stat(aside); err != nil || !strings.HasPrefix(filepath.Base(aside), "registry.json.imported-") {
		t.Fatalf("moved aside to %q: %v", aside, err)
	}
	got, _ := s.LoadOrgs(ctx)
	if len(got) != 2 || !got[0].Equal(newer) || got[1].Status != state.LoggedOut || got[1].Hold.Reason != "logout" ||
		!got[1].Hold.Until.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("after import %+v", got)
	}

	// A crash between the commit and the rename: the file is back, but it
	// is only moved aside, never imported over newer state again.
	os.WriteFile(reg, []byte(registryJSON), 0o600)
	s.DeleteOrg(ctx, "lo")
	n, _, err = s.ImportRegistry(ctx, reg, t0.Add(time.Second))
	if err != nil || n != 0 {
		t.Fatalf("second import: %d %v", n, err)
	}
	if got, _ := s.LoadOrgs(ctx); len(got) != 1 {
		t.Fatalf("second import wrote records: %+v", got)
	}
	if _, err := os.Stat(reg); !os.IsNotExist(err) {
		t.Fatal("registry.json not moved aside the second time")
	}
}

func TestImportRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "state.db"))
	reg := filepath.Join(dir, "registry.json")
	for _, body := range []string{`{"orgs": [`, `{"orgs": [{"id": "../etc"}]}`} {
		os.WriteFile(reg, []byte(body), 0o600)
		if _, _, err := s.ImportRegistry(ctx, reg, t0); err == nil || !strings.Contains(err.Error(), reg) {
			t.Errorf("import of %s: %v", body, err)
		}
	}
	if n, _, err := s.ImportRegistry(ctx, filepath.Join(dir, "missing.json"), t0); n != 0 || err != nil {
		t.Fatalf("missing file: %d %v", n, err)
	}
}

// BenchmarkRegister measures one registration's commit with many
// organizations already stored: it must not grow with their number.
func BenchmarkRegister(b *testing.B) {
	for _, existing := range []int{10, 10000} {
		b.Run(fmt.Sprint(existing), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "state.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			tx, _ := s.db.Begin()
			for i := range existing {
				if err := saveOrg(ctx, tx, lifecycle.Record{ID: fmt.Sprint("pre", i), Status: state.Stopped}, false, t0); err != nil {
					b.Fatal(err)
				}
			}
			tx.Commit()
			b.ResetTimer()
			for i := range b.N {
				if err := s.SaveOrg(ctx, lifecycle.Record{ID: fmt.Sprint("new", i), Status: state.Queued, Run: true}, nil, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
