package private

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Whatever the umask (022 here, as a login shell's), new and older files
// end up owner-only. The umask is the process's: no parallel tests here.
func TestModesWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := Dir(dir); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "x.db")
	if err := SQLite(db); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{filepath.Dir(dir): DirMode, dir: DirMode, db: FileMode}
	check := func(when string) {
		t.Helper()
		for p, mode := range want {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if fi.Mode().Perm() != mode {
				t.Errorf("%s: %s is %04o, want %04o", when, p, fi.Mode().Perm(), mode)
			}
		}
	}
	check("new")

	// As an older version left them.
	if err := os.WriteFile(db+"-wal", []byte("wal"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, db} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Dir(dir); err != nil {
		t.Fatal(err)
	}
	if err := SQLite(db); err != nil {
		t.Fatal(err)
	}
	want[db+"-wal"] = FileMode
	check("older")
	if b, err := os.ReadFile(db + "-wal"); err != nil || string(b) != "wal" {
		t.Fatalf("the -wal's content changed: %q %v", b, err)
	}
}
