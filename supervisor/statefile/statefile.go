// Package statefile writes the supervisor's JSON state so that a crash or
// power loss at any moment leaves either the old file or the new one on
// disk, never a torn mix: write a temp file in the same directory, fsync it,
// rename it over the target, fsync the directory.
package statefile

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Save marshals v as indented JSON and replaces path with it crash-safely.
// The file is created 0600: it holds organization state that only the
// supervisor reads. The directory must exist.
func Save(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	data = append(data, '\n')
	if err := writeAtomic(path, data); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// Same directory, so the rename cannot cross filesystems; the dot prefix
	// keeps it out of casual listings. CreateTemp opens it 0600.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes a rename in dir durable: without it the directory entry
// may still point at the old name after a power loss.
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

// Load reads the JSON at path into v. A missing file returns an error that
// satisfies errors.Is(err, os.ErrNotExist), so callers can start empty; a
// corrupt file returns an error naming the path, for the operator to act on.
func Load(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("load state: %s is not valid JSON (corrupt state file; fix or move it aside): %w", path, err)
	}
	return nil
}
