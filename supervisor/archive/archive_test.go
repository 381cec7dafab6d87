package archive

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var t0 = time.UnixMilli(1_700_000_000_000)

// store creates authRoot/dir with a file in it, like a worker's store.
func store(t *testing.T, root, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, dir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, dir, "store.db"), []byte(dir), 0o600); err != nil {
		t.Fatal(err)
	}
}

// onDisk returns the paths of org's archives in root, newest first, read
// from the directory rather than from any index.
func onDisk(t *testing.T, root, org string) []string {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var found []entry
	for _, e := range entries {
		if o, reason, ms, ok := parseAny(e.Name()); ok && o == org && e.IsDir() {
			found = append(found, entry{path: filepath.Join(root, e.Name()), reason: reason, at: time.UnixMilli(ms)})
		}
	}
	newestFirst(found)
	var paths []string
	for _, a := range found {
		paths = append(paths, a.path)
	}
	return paths
}

func TestMove(t *testing.T) {
	root := t.TempDir()
	store(t, root, "2")
	got, err := NewDir(root).Move("2", "corrupted", t0)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(root, "2_corrupted_1700000000000")
	if got != want {
		t.Fatalf("Move = %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(root, "2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("source still exists")
	}
	if b, err := os.ReadFile(filepath.Join(want, "store.db")); err != nil || string(b) != "2" {
		t.Fatalf("archived store: %q, %v", b, err)
	}
}

func TestMoveMissingDir(t *testing.T) {
	root := t.TempDir()
	got, err := NewDir(root).Move("2", "loggedout", t0)
	if got != "" || err != nil {
		t.Fatalf("Move = %q, %v; want \"\", nil", got, err)
	}
	absent := NewDir(filepath.Join(root, "absent"))
	if got, err := absent.Move("2", "loggedout", t0); got != "" || err != nil {
		t.Fatalf("missing authRoot: %q, %v", got, err)
	}
	if removed, err := absent.Prune("2", 0); len(removed) != 0 || err != nil {
		t.Fatalf("prune in a missing authRoot: %v, %v", removed, err)
	}
}

func TestMoveCollisionBumpsMillisecond(t *testing.T) {
	root := t.TempDir()
	// An empty directory is the dangerous case: rename(2) would replace it.
	if err := os.Mkdir(filepath.Join(root, "2_corrupted_1700000000000"), 0o700); err != nil {
		t.Fatal(err)
	}
	store(t, root, "2_corrupted_1700000000001")
	store(t, root, "2")
	got, err := NewDir(root).Move("2", "corrupted", t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "2_corrupted_1700000000002"); got != want {
		t.Fatalf("Move = %q, want %q", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "2_corrupted_1700000000001", "store.db")); string(b) != "2_corrupted_1700000000001" {
		t.Fatal("an existing archive was overwritten")
	}
}

func TestOrgPrefixIsolation(t *testing.T) {
	root := t.TempDir()
	others := []string{
		"a_corrupted_",                     // no digits
		"a_corrupted_12x",                  // not digits
		"a_stale_500",                      // not a reason
		"a_corrupted_99999999999999999999", // overflows int64
	}
	for _, dir := range append([]string{"a_corrupted_100", "a_b_corrupted_200", "ab_corrupted_300", "a_corrupted_corrupted_400"}, others...) {
		store(t, root, dir)
	}
	if err := os.WriteFile(filepath.Join(root, "a_deleted_600"), nil, 0o600); err != nil { // a file, not an archive
		t.Fatal(err)
	}
	d := NewDir(root)
	for _, org := range []string{"a", "a_b", "ab", "a_corrupted"} {
		want := map[string]string{"a": "a_corrupted_100", "a_b": "a_b_corrupted_200", "ab": "ab_corrupted_300",
			"a_corrupted": "a_corrupted_corrupted_400"}[org]
		removed, err := d.Prune(org, 0)
		if err != nil || len(removed) != 1 || filepath.Base(removed[0]) != want {
			t.Errorf("Prune(%q, 0) = %v, %v; want only %s", org, removed, err, want)
		}
	}
	for _, name := range append(others, "a_deleted_600") {
		if _, err := os.Stat(filepath.Join(root, name)); err != nil {
			t.Errorf("%s, no archive, was removed", name)
		}
	}
}

// Prune counts all reasons together and removes the oldest first.
func TestPruneKeepsNewestThree(t *testing.T) {
	root := t.TempDir()
	d := NewDir(root)
	var paths []string
	for i := range 5 {
		store(t, root, "2")
		p, err := d.Move("2", []string{"corrupted", "loggedout", "deleted"}[i%3], t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	store(t, root, "2")
	removed, err := d.Prune("2", 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{paths[1], paths[0]}) {
		t.Fatalf("removed %v, want the two oldest %v", removed, paths[:2])
	}
	if left := onDisk(t, root, "2"); !slices.Equal(left, []string{paths[4], paths[3], paths[2]}) {
		t.Fatalf("left %v", left)
	}
	if _, err := os.Stat(filepath.Join(root, "2", "store.db")); err != nil {
		t.Fatal("prune touched the live store")
	}
	if removed, err := d.Prune("2", 3); err != nil || len(removed) != 0 {
		t.Fatalf("second Prune = %v, %v", removed, err)
	}
	if removed, err := d.Prune("2", -1); err != nil || len(removed) != 3 {
		t.Fatalf("Prune(-1) = %v, %v", removed, err)
	}
}

func TestInvalidInputRejected(t *testing.T) {
	root := t.TempDir()
	d := NewDir(root)
	outside := filepath.Join(filepath.Dir(root), "victim")
	for _, org := range []string{"", "..", "../victim", "a/b", "2_corrupted_1"} {
		if p, err := d.Move(org, "corrupted", t0); err == nil || p != "" {
			t.Errorf("Move(%q) = %q, %v; want error", org, p, err)
		}
		if _, err := d.Prune(org, 0); err == nil {
			t.Errorf("Prune(%q) accepted", org)
		}
	}
	store(t, root, "2")
	for _, reason := range []string{"", "evil", "../x", "corrupted/"} {
		p, err := d.Move("2", reason, t0)
		if err == nil || p != "" || !strings.Contains(err.Error(), "archive 2") {
			t.Errorf("Move(reason %q) = %q, %v; want error", reason, p, err)
		}
	}
	if _, err := os.Stat(outside); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("something was written outside authRoot")
	}
	if _, err := os.Stat(filepath.Join(root, "2")); err != nil {
		t.Fatal("a rejected Move moved the store")
	}
}

// An auth directory an older version made 0755 under umask 022 is kept for
// weeks as an archive: its keys must not stay readable by every user.
func TestArchiveIsPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	root := t.TempDir()
	store(t, root, "2")
	if err := os.Chmod(filepath.Join(root, "2"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := NewDir(root).Move("2", "corrupted", t0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("archive %s is %04o, want 0700", p, fi.Mode().Perm())
	}
}
