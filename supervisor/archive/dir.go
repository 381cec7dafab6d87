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
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
)

// Dir is the auth root (state_dir/auth_sessions) with an index of its
// archives, read once: pruning one organization's archives then touches
// only its own entries. Reading the whole directory per prune made a boot
// with 1,500 pending archives read it 1,500 times. Only the supervisor
// writes the auth root, so the index stays true. Safe for concurrent use.
type Dir struct {
	root  string
	mu    sync.Mutex
	index map[string][]entry // nil until first used
}

// NewDir returns the archive index of root.
func NewDir(root string) *Dir { return &Dir{root: root} }

// Move archives org's auth directory; see move.
func (d *Dir) Move(org, reason string, now time.Time) (string, error) {
	path, err := move(d.root, org, reason, now)
	if path != "" {
		d.mu.Lock()
		if d.index != nil {
			if _, r, ms, ok := parseAny(filepath.Base(path)); ok {
				d.index[org] = append(d.index[org], entry{path: path, reason: r, at: time.UnixMilli(ms)})
			}
		}
		d.mu.Unlock()
	}
	return path, err
}

// Prune keeps org's newest keep archives (all reasons together) and
// removes the older ones, returning the paths it removed. On an error it
// returns what it removed so far.
func (d *Dir) Prune(org string, keep int) ([]string, error) {
	if err := orgid.Validate(org); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	d.mu.Lock()
	if err := d.load(); err != nil {
		d.mu.Unlock()
		return nil, err
	}
	archives := slices.Clone(d.index[org])
	d.mu.Unlock()
	newestFirst(archives)
	keep = max(keep, 0)
	var removed []string
	var err error
	for _, a := range archives[min(keep, len(archives)):] {
		if err = os.RemoveAll(a.path); err != nil {
			err = fmt.Errorf("archive %s: prune: %w", org, err)
			break
		}
		removed = append(removed, a.path)
	}
	d.mu.Lock()
	d.index[org] = slices.DeleteFunc(d.index[org], func(a entry) bool { return slices.Contains(removed, a.path) })
	d.mu.Unlock()
	return removed, err
}

// load reads the auth root once; the caller holds mu.
func (d *Dir) load() error {
	if d.index != nil {
		return nil
	}
	entries, err := os.ReadDir(d.root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archive: read %s: %w", d.root, err)
	}
	d.index = map[string][]entry{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if org, reason, ms, ok := parseAny(e.Name()); ok {
			d.index[org] = append(d.index[org], entry{path: filepath.Join(d.root, e.Name()), reason: reason, at: time.UnixMilli(ms)})
		}
	}
	return nil
}

// parseAny reads `<org>_<reason>_<unix-ms>` from the right; orgid refuses
// IDs of that shape, so the split is never ambiguous.
func parseAny(name string) (org, reason string, ms int64, ok bool) {
	i := strings.LastIndexByte(name, '_')
	if i < 0 {
		return "", "", 0, false
	}
	digits, rest := name[i+1:], name[:i]
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", "", 0, false
	}
	ms, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return "", "", 0, false
	}
	for _, r := range orgid.ArchiveReasons {
		if o, found := strings.CutSuffix(rest, "_"+r); found && orgid.Validate(o) == nil {
			return o, r, ms, true
		}
	}
	return "", "", 0, false
}
