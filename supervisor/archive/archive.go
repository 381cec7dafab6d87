// Package archive moves an organization's auth directory aside instead of
// deleting it, and keeps only the newest few archives.
//
// A trip, a logout or a delete must give the next worker a clean store, but
// the old keys are the only evidence for debugging a Bad MAC storm, so they
// are kept as authRoot/<org>_<reason>_<unix-ms> (reason one of
// orgid.ArchiveReasons). orgid rejects IDs of that shape, so an archive name
// can never collide with a live organization's directory.
package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/private"
)

// entry is one archived auth directory.
type entry struct {
	path   string
	reason string
	at     time.Time // from the name's unix-ms, so a copied tree keeps its order
}

// move renames authRoot/<org> to authRoot/<org>_<reason>_<unix-ms>, makes
// it 0700 and fsyncs authRoot so the rename survives a power loss. A
// missing directory is not an error: it returns "", nil, because a
// never-linked organization has nothing to archive. If the target exists
// (two moves in the same millisecond) the millisecond is bumped until the
// name is free. When only the chmod or the fsync fails the directory has
// moved, so its new path comes back with the error.
func move(authRoot, org, reason string, now time.Time) (string, error) {
	if err := validate(org, reason); err != nil {
		return "", err
	}
	src := filepath.Join(authRoot, org)
	if _, err := os.Lstat(src); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("archive %s: %w", org, err)
	}
	ms := now.UnixMilli()
	for {
		dst := filepath.Join(authRoot, name(org, reason, ms))
		_, err := os.Lstat(dst)
		if err == nil {
			// rename(2) would silently replace an empty directory.
			ms++
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("archive %s: %w", org, err)
		}
		if err := os.Rename(src, dst); err != nil {
			return "", fmt.Errorf("archive %s: %w", org, err)
		}
		// The keys stay private however an older version left the
		// directory: an archive is kept for weeks.
		if err := os.Chmod(dst, private.DirMode); err != nil {
			return dst, fmt.Errorf("archive %s: moved to %s but %w", org, dst, err)
		}
		if err := private.SyncDir(authRoot); err != nil {
			return dst, fmt.Errorf("archive %s: moved to %s but %w", org, dst, err)
		}
		return dst, nil
	}
}

// newestFirst sorts archives by their time, newest first.
func newestFirst(archives []entry) {
	slices.SortFunc(archives, func(a, b entry) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(b.path, a.path)
	})
}

func validate(org, reason string) error {
	if err := orgid.Validate(org); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if !slices.Contains(orgid.ArchiveReasons, reason) {
		return fmt.Errorf("archive %s: unknown reason %q (want one of %s)", org, reason, strings.Join(orgid.ArchiveReasons, ", "))
	}
	return nil
}

func name(org, reason string, ms int64) string {
	return org + "_" + reason + "_" + strconv.FormatInt(ms, 10)
}
