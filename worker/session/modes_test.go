package session

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	walog "go.mau.fi/whatsmeow/util/log"
)

// The report: whatsmeow.db, with the device's keys, came out 0644
// under umask 022, and its -wal and -shm with it. The umask is the
// process's, so this test does not run in parallel.
func TestStoreFilesArePrivateWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })

	authDir := filepath.Join(t.TempDir(), "auth_sessions", "2")
	path := filepath.Join(authDir, "whatsmeow.db")
	check := func(when string) {
		t.Helper()
		container, err := openStore(context.Background(), authDir, walog.Noop)
		if err != nil {
			t.Fatal(err)
		}
		defer container.Close()
		// Its schema upgrade has written through the WAL: -wal and -shm
		// exist while the store is open.
		for p, want := range map[string]os.FileMode{authDir: 0o700, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: %s is %04o, want %04o", when, filepath.Base(p), fi.Mode().Perm(), want)
			}
		}
	}
	check("new store")

	// An auth directory an older version left readable is fixed at open.
	for p, mode := range map[string]os.FileMode{authDir: 0o755, path: 0o644} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	check("older store")
}
