package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

// umask022 runs the rest of the test under the umask most distributions
// give a login shell, which the report used; the umask is the
// process's, so these tests do not run in parallel.
func umask022(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
}

func wantMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %04o, want %04o", filepath.Base(path), got, want)
	}
}

// The report: state.db-wal and state.db-shm came out 0644 under
// umask 022, readable by every user, with proxy passwords in them.
func TestStateFilesArePrivateWhateverTheUmask(t *testing.T) {
	umask022(t)
	dir := filepath.Join(t.TempDir(), "supervisor")
	path := filepath.Join(dir, "state.db")
	s := open(t, path)
	if err := s.SaveOrg(ctx, lifecycle.Record{ID: "2", Status: state.Queued, Run: true, Proxy: "socks5://u:secret@203.0.113.7:1080"}, nil, t0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		wantMode(t, p, 0o600)
	}
	wantMode(t, dir, 0o700)
}

// An install from before the fix has its files world-readable: opening
// the store fixes them, -wal and -shm included.
func TestOpenFixesAnOlderInstallsModes(t *testing.T) {
	umask022(t)
	dir := filepath.Join(t.TempDir(), "supervisor")
	path := filepath.Join(dir, "state.db")
	first := open(t, path)
	if err := first.SaveOrg(ctx, lifecycle.Record{ID: "2", Status: state.Queued}, nil, t0); err != nil {
		t.Fatal(err)
	}
	// The first store keeps -wal and -shm in place while it is open.
	for _, p := range []string{dir, path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	open(t, path)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		wantMode(t, p, 0o600)
	}
	wantMode(t, dir, 0o700)
}
