package archive

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

func TestMove(t *testing.T) {
	root := t.TempDir()
	store(t, root, "2")
	got, err := Move(root, "2", "corrupted", t0)
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
	got, err := Move(root, "2", "loggedout", t0)
	if got != "" || err != nil {
		t.Fatalf("Move = %q, %v; want \"\", nil", got, err)
	}
	if got, err := Move(filepath.Join(root, "absent"), "2", "loggedout", t0); got != "" || err != nil {
		t.Fatalf("missing authRoot: %q, %v", got, err)
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
	got, err := Move(root, "2", "corrupted", t0)
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

func TestListNewestFirst(t *testing.T) {
	root := t.TempDir()
	for i, reason := range []string{"corrupted", "loggedout", "deleted", "corrupted"} {
		store(t, root, "2")
		if _, err := Move(root, "2", reason, t0.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	store(t, root, "2") // the live store is not an archive
	got, err := List(root, "2")
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for i, a := range got {
		reasons = append(reasons, a.Reason)
		if want := t0.Add(time.Duration(3-i) * time.Hour); !a.At.Equal(want) {
			t.Errorf("archive %d at %v, want %v", i, a.At, want)
		}
	}
	if !slices.Equal(reasons, []string{"corrupted", "deleted", "loggedout", "corrupted"}) {
		t.Fatalf("reasons %v", reasons)
	}
	if got[0].Path != filepath.Join(root, "2_corrupted_1700010800000") {
		t.Fatalf("newest path %s", got[0].Path)
	}
}

func TestListMissingRoot(t *testing.T) {
	got, err := List(filepath.Join(t.TempDir(), "absent"), "2")
	if err != nil || len(got) != 0 {
		t.Fatalf("List = %v, %v", got, err)
	}
}

func TestOrgPrefixIsolation(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{
		"a_corrupted_100",
		"a_b_corrupted_200",                // org a_b
		"ab_corrupted_300",                 // org ab
		"a_corrupted_corrupted_400",        // org a_corrupted
		"a_corrupted_",                     // no digits
		"a_corrupted_12x",                  // not digits
		"a_stale_500",                      // not a reason
		"a_corrupted_99999999999999999999", // overflows int64
	} {
		store(t, root, dir)
	}
	if err := os.WriteFile(filepath.Join(root, "a_deleted_600"), nil, 0o600); err != nil { // a file, not an archive
		t.Fatal(err)
	}
	for org, want := range map[string][]string{
		"a":           {"a_corrupted_100"},
		"a_b":         {"a_b_corrupted_200"},
		"ab":          {"ab_corrupted_300"},
		"a_corrupted": {"a_corrupted_corrupted_400"},
	} {
		got, err := List(root, org)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range got {
			names = append(names, filepath.Base(a.Path))
		}
		if !slices.Equal(names, want) {
			t.Errorf("List(%q) = %v, want %v", org, names, want)
		}
	}
	removed, err := Prune(root, "a", 0)
	if err != nil || len(removed) != 1 || filepath.Base(removed[0]) != "a_corrupted_100" {
		t.Fatalf("Prune(a, 0) = %v, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(root, "a_b_corrupted_200")); err != nil {
		t.Fatal("pruning a removed a_b's archive")
	}
}

func TestPruneKeepsNewestThree(t *testing.T) {
	root := t.TempDir()
	var paths []string
	for i := range 5 {
		store(t, root, "2")
		p, err := Move(root, "2", []string{"corrupted", "loggedout"}[i%2], t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	store(t, root, "2")
	removed, err := Prune(root, "2", 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{paths[1], paths[0]}) {
		t.Fatalf("removed %v, want the two oldest %v", removed, paths[:2])
	}
	left, _ := List(root, "2")
	if len(left) != 3 || left[2].Path != paths[2] {
		t.Fatalf("left %v", left)
	}
	if _, err := os.Stat(filepath.Join(root, "2", "store.db")); err != nil {
		t.Fatal("prune touched the live store")
	}
	if removed, err := Prune(root, "2", 3); err != nil || len(removed) != 0 {
		t.Fatalf("second Prune = %v, %v", removed, err)
	}
	if removed, err := Prune(root, "2", -1); err != nil || len(removed) != 3 {
		t.Fatalf("Prune(-1) = %v, %v", removed, err)
	}
}

func TestInvalidInputRejected(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(filepath.Dir(root), "victim")
	for _, org := range []string{"", "..", "../victim", "a/b", "2_corrupted_1"} {
		if p, err := Move(root, org, "corrupted", t0); err == nil || p != "" {
			t.Errorf("Move(%q) = %q, %v; want error", org, p, err)
		}
		if _, err := List(root, org); err == nil {
			t.Errorf("List(%q) accepted", org)
		}
		if _, err := Prune(root, org, 0); err == nil {
			t.Errorf("Prune(%q) accepted", org)
		}
	}
	store(t, root, "2")
	for _, reason := range []string{"", "evil", "../x", "corrupted/"} {
		p, err := Move(root, "2", reason, t0)
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
