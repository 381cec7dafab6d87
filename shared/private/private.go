// Package private gives the files that hold keys, message texts and proxy
// passwords their owner-only modes (files 0600, directories 0700) whatever
// the process umask, and fixes the modes an earlier version left behind.
//
// SQLite creates a database's -wal and -shm files with the main file's
// mode (it fchmods a new, empty one to match), so a database file created
// 0600 before SQLite opens it keeps its companions 0600 as well.
package private

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

const (
	// DirMode is the mode of every directory the supervisor and the
	// workers keep state in.
	DirMode fs.FileMode = 0o700
	// FileMode is the mode of every file they keep state in.
	FileMode fs.FileMode = 0o600
)

// Dir makes dir, with any missing parents, and sets its mode to DirMode:
// MkdirAll leaves an existing directory's mode alone, and a new one's is
// masked by the umask.
func Dir(dir string) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("private dir: %w", err)
	}
	if err := os.Chmod(dir, DirMode); err != nil {
		return fmt.Errorf("private dir: %w", err)
	}
	return nil
}

// SQLite prepares the database at path for opening: it creates the file
// empty if it is missing, and sets it and its -wal and -shm files, where
// they exist, to FileMode. Call it before the first connection opens.
func SQLite(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return fmt.Errorf("private sqlite: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("private sqlite: %w", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, FileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("private sqlite: %w", err)
		}
	}
	return nil
}

// SyncDir makes a rename or a new entry in dir durable: without it the
// directory entry may still point at the old name after a power loss.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
