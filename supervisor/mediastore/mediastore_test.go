package mediastore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/mediastore"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

var bg = context.Background()

func open(t *testing.T) (*mediastore.Library, *store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.SaveOrg(bg, lifecycle.Record{ID: "2", Status: state.Queued, Run: true}, nil, clocktest.Origin()); err != nil {
		t.Fatal(err)
	}
	lib, err := mediastore.Open(filepath.Join(dir, "media"), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return lib, st, filepath.Join(dir, "media")
}

// A file is stored once by content, private to the supervisor's user, and
// read back whole with its type and name.
func TestPutStoresOnceByContent(t *testing.T) {
	lib, _, dir := open(t)
	now := clocktest.Origin()
	a, err := lib.Put(bg, []byte("%PDF one"), "application/pdf", "a.pdf", now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lib.Put(bg, []byte("%PDF one"), "application/pdf", "b.pdf", now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || a.ID != mediastore.ID([]byte("%PDF one")) {
		t.Fatalf("ids %s %s", a.ID, b.ID)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d files for one content, want 1", len(entries))
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, entries[0].Name()): 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, st.Mode().Perm(), err, want)
		}
	}
	f, err := lib.Load(bg, a.ID)
	if err != nil || string(f.Data) != "%PDF one" || f.Filename != "b.pdf" || f.MIME != "application/pdf" {
		t.Fatalf("Load = %+v, %v", f, err)
	}
	if _, err := lib.Load(bg, mediastore.ID([]byte("other"))); !errors.Is(err, outbox.ErrMediaMissing) {
		t.Errorf("Load of an unknown id: %v", err)
	}
}

// Retention spares a file a pending message names, however old, and a
// recent one; it deletes an old one once its messages are final.
func TestPruneSparesPendingMessages(t *testing.T) {
	lib, st, dir := open(t)
	t0 := clocktest.Origin()
	old, err := lib.Put(bg, []byte("old picture"), "image/jpeg", "", t0)
	if err != nil {
		t.Fatal(err)
	}
	recent, err := lib.Put(bg, []byte("recent picture"), "image/jpeg", "", t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := st.InsertMessage(bg, outbox.Message{ID: "msg_1", Org: "2", To: "573001112222", WAID: "3EB0AA", QueuedAt: t0, Media: old.ID})
	if err != nil {
		t.Fatal(err)
	}
	cutoff := t0.Add(time.Hour)
	if n, err := lib.Prune(bg, cutoff); err != nil || n != 0 {
		t.Fatalf("prune with a queued message: %d, %v; want nothing pruned", n, err)
	}
	if _, _, err := st.Fail(bg, m, "expired", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, err := lib.Prune(bg, cutoff); err != nil || n != 1 {
		t.Fatalf("prune after the message failed: %d, %v; want the old file", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(old.ID, mediastore.Prefix))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pruned file still on disk: %v", err)
	}
	if _, err := lib.Load(bg, recent.ID); err != nil {
		t.Errorf("the recent file went: %v", err)
	}
	if _, _, err := st.InsertMessage(bg, outbox.Message{ID: "msg_2", Org: "2", To: "573001112222", WAID: "3EB0AB", QueuedAt: t0, Media: old.ID}); err == nil {
		t.Error("a message naming a pruned file was accepted")
	}
}
