package archive

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The index finds the archives made before it was built and those it
// made itself, and keeps each organization's apart from its prefixes'.
func TestDirPrunesFromItsIndex(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{"a_corrupted_100", "a_b_corrupted_200", "ab_loggedout_300", "a_corrupted_corrupted_400", "a_stale_500"} {
		store(t, root, dir)
	}
	d := NewDir(root)
	var made []string
	for i := range 3 {
		store(t, root, "a")
		p, err := d.Move("a", "loggedout", t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, p)
	}
	removed, err := d.Prune("a", 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{made[0], filepath.Join(root, "a_corrupted_100")}; !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	for _, other := range []string{"a_b_corrupted_200", "ab_loggedout_300", "a_corrupted_corrupted_400", "a_stale_500"} {
		if _, err := os.Stat(filepath.Join(root, other)); err != nil {
			t.Fatalf("pruning a touched %s", other)
		}
	}
	// Made after the index was read, still counted.
	store(t, root, "a")
	newest, _ := d.Move("a", "deleted", t0.Add(time.Hour))
	if removed, err := d.Prune("a", 2); err != nil || !slices.Equal(removed, []string{made[1]}) {
		t.Fatalf("second prune: %v %v", removed, err)
	}
	if left := onDisk(t, root, "a"); !slices.Equal(left, []string{newest, made[2]}) {
		t.Fatalf("left %v", left)
	}
}

func TestParseAny(t *testing.T) {
	for name, want := range map[string]string{
		"a_corrupted_1":           "a",
		"a_b_loggedout_22":        "a_b",
		"a_corrupted_deleted_3":   "a_corrupted",
		"68e3f605_deleted_170000": "68e3f605",
	} {
		if org, _, _, ok := parseAny(name); !ok || org != want {
			t.Errorf("parseAny(%q) = %q %v, want %q", name, org, ok, want)
		}
	}
	for _, name := range []string{"a", "a_corrupted_", "a_corrupted_1x", "a_stale_1", "_corrupted_1", "a.b_corrupted_1", "a_corrupted_99999999999999999999"} {
		if org, _, _, ok := parseAny(name); ok {
			t.Errorf("parseAny(%q) = %q, want no archive", name, org)
		}
	}
}
