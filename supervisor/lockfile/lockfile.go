// Package lockfile keeps a second supervisor off a state_dir that one
// already runs on: two would each start a worker per organization on the
// same auth directories, and commit over each other's state.
package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Lock is a held flock on state_dir/supervisor/lock. The kernel drops it
// when the process dies, however it dies, so a crash never leaves a stale lock.
type Lock struct {
	f *os.File
}

// Acquire takes the lock of stateDir or returns an error naming the
// directory and the PID that holds it.
func Acquire(stateDir string) (*Lock, error) {
	path := filepath.Join(stateDir, "supervisor", "lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", stateDir, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state_dir %s: lock: %w", stateDir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state_dir %s is in use by another wa-supervisor (%s); stop it first or use another state_dir", stateDir, holder(f))
		}
		return nil, fmt.Errorf("state_dir %s: lock %s: %w", stateDir, path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("state_dir %s: lock: %w", stateDir, err)
		}
	}
	return &Lock{f: f}, nil
}

// holder reads the PID the lock's holder wrote.
func holder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid := strings.TrimSpace(string(b[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		return "PID unknown"
	}
	return "PID " + pid
}

// Release drops the lock.
func (l *Lock) Release() error {
	return l.f.Close()
}
