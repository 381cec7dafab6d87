package statefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type doc struct {
	Name  string         `json:"name"`
	At    time.Time      `json:"at"`
	Items map[string]int `json:"items"`
	Tags  []string       `json:"tags"`
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	in := doc{Name: "x", At: time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC), Items: map[string]int{"a": 1}, Tags: []string{"t"}}
	if err := Save(path, in); err != nil {
		t.Fatal(err)
	}
	var out doc
	if err := Load(path, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != in.Name || !out.At.Equal(in.At) || out.Items["a"] != 1 || len(out.Tags) != 1 {
		t.Fatalf("got %+v", out)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}

	// Overwrite, and leave no temp files behind.
	in.Name = "y"
	if err := Save(path, in); err != nil {
		t.Fatal(err)
	}
	if err := Load(path, &out); err != nil || out.Name != "y" {
		t.Fatalf("after overwrite: %+v, %v", out, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the state file", len(entries))
	}
}

func TestMissingFile(t *testing.T) {
	err := Load(filepath.Join(t.TempDir(), "nope.json"), &doc{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

func TestLeftoverTempFileIgnored(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := Save(path, doc{Name: "good"}); err != nil {
		t.Fatal(err)
	}
	// A crash between writing the temp file and the rename leaves this.
	if err := os.WriteFile(filepath.Join(dir, ".state.json.tmp-123"), []byte(`{"name": "tor`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out doc
	if err := Load(path, &out); err != nil || out.Name != "good" {
		t.Fatalf("got %+v, %v", out, err)
	}
	if err := Save(path, doc{Name: "next"}); err != nil {
		t.Fatalf("Save next to a leftover temp file: %v", err)
	}
}

func TestCorruptJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(`{"name": "tor`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Load(path, &doc{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("err = %v, want a corrupt-file error naming %s", err, path)
	}
	if errors.Is(err, os.ErrNotExist) {
		t.Fatal("a corrupt file must not look missing: the caller would start empty and overwrite it")
	}
}

func TestSaveErrors(t *testing.T) {
	dir := t.TempDir()
	if err := Save(filepath.Join(dir, "missing", "state.json"), doc{}); err == nil {
		t.Fatal("Save into a missing directory succeeded")
	}
	err := Save(filepath.Join(dir, "state.json"), func() {})
	if err == nil || !strings.Contains(err.Error(), "state.json") {
		t.Fatalf("unmarshalable value: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed Save created the file")
	}
}

func TestFailedRenameRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	// A non-empty directory where the file should be makes the rename fail.
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, doc{}); err == nil {
		t.Fatal("Save over a directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp file left behind: %d entries", len(entries))
	}
}
