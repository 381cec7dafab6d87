// Package transfer carries one organization from one supervisor's
// state_dir to another's: a Bundle holds its auth directory (the worker's
// whatsmeow store, so the target's worker comes back as the same linked
// device without a QR), every row of state.db that belongs to it (the
// record with its holds, messages, broadcasts, undelivered webhook events,
// contacts, pacer state, daily and warm-up counts) and the media files its
// messages name.
//
// Export reads a stopped organization; Import writes a bundle in one
// transaction, with the auth directory put in place by a rename inside it,
// so that a failure or a crash at any point leaves either all of it or
// nothing that counts (a leftover directory without its rows is archived by
// the next import). Forget removes the source's rows and archives its auth
// directory: keys are never deleted.
package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/private"
	"github.com/wa-sidecar/wa-sidecar/supervisor/archive"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

// Version is the bundle format; an import refuses another.
const Version = 1

// MaxBytes bounds an encoded bundle, which both ends hold in memory: a
// whatsmeow store is a few MiB, a month of one organization's messages
// some tens, and what is left for the media files its queued messages
// name. An organization past it cannot move (the import answers 413).
const MaxBytes = 256 << 20

// Bundle is one organization on its way to another node.
type Bundle struct {
	Version int           `json:"version"`
	Org     string        `json:"org"`
	Data    store.OrgData `json:"data"`
	// Auth is the auth directory's regular files, paths relative to it
	// with slashes.
	Auth []File `json:"auth"`
	// Media are the files the organization's messages name, by media id.
	Media []File `json:"media"`
	// Run says the organization ran on the source before the move
	// stopped it: the target starts it once it owns it.
	Run bool `json:"run"`
}

// File is one file of a bundle.
type File struct {
	Path string `json:"path"`
	Data []byte `json:"data"`
}

// Store is what a transfer needs of state.db; *store.Store implements it.
type Store interface {
	ExportOrg(ctx context.Context, org string) (store.OrgData, error)
	ImportOrg(ctx context.Context, d store.OrgData, run bool, beforeCommit func() error) error
	ForgetOrg(ctx context.Context, org string) error
}

// Dirs are the places under state_dir a transfer reads and writes.
type Dirs struct {
	// Auth is state_dir/auth_sessions, one directory per organization.
	Auth string
	// Media is state_dir/media, files named by their hex SHA-256.
	Media string
}

// DirsOf returns the directories of stateDir.
func DirsOf(stateDir string) Dirs {
	return Dirs{Auth: filepath.Join(stateDir, "auth_sessions"), Media: filepath.Join(stateDir, "media")}
}

// Export reads org into a bundle. The organization's worker must be
// stopped: a running one writes its store while the files are read.
func Export(ctx context.Context, st Store, dirs Dirs, org string) (Bundle, error) {
	if err := orgid.Validate(org); err != nil {
		return Bundle{}, err
	}
	data, err := st.ExportOrg(ctx, org)
	if err != nil {
		return Bundle{}, err
	}
	b := Bundle{Version: Version, Org: org, Data: data}
	if b.Auth, err = readTree(filepath.Join(dirs.Auth, org)); err != nil {
		return Bundle{}, fmt.Errorf("export %s: auth directory: %w", org, err)
	}
	for _, id := range mediaIDs(data) {
		hexID, ok := mediaHex(id)
		if !ok {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dirs.Media, hexID))
		if errors.Is(err, fs.ErrNotExist) {
			// Pruned with its row gone or going: the messages that
			// named it are final.
			continue
		}
		if err != nil {
			return Bundle{}, fmt.Errorf("export %s: media %s: %w", org, id, err)
		}
		b.Media = append(b.Media, File{Path: id, Data: raw})
	}
	return b, nil
}

// mediaIDs are the ids of the media rows of d.
func mediaIDs(d store.OrgData) []string {
	var out []string
	for _, t := range d.Tables {
		if t.Name != "media" {
			continue
		}
		for _, r := range t.Rows {
			if id, ok := r["id"].(string); ok {
				out = append(out, id)
			}
		}
	}
	return out
}

// mediaHex is the file name of a media id, if it is one.
func mediaHex(id string) (string, bool) {
	h, ok := strings.CutPrefix(id, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", false
	}
	return h, true
}

// readTree reads every regular file under root. A missing root is an empty
// tree: an organization that never linked has no store yet. Anything but
// directories and regular files (a symlink) is refused, since it would not
// mean the same on another host.
func readTree(root string) ([]File, error) {
	var out []File
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, File{Path: filepath.ToSlash(rel), Data: raw})
		return nil
	})
	return out, err
}

// ErrBadBundle wraps what Check finds wrong with a bundle.
var ErrBadBundle = errors.New("bad bundle")

// Check refuses a bundle that is not one organization's, or whose paths
// would leave their directory.
func (b Bundle) Check() error {
	if b.Version != Version {
		return fmt.Errorf("bundle version %d, this node reads %d", b.Version, Version)
	}
	if err := orgid.Validate(b.Org); err != nil {
		return err
	}
	if b.Data.Org != b.Org {
		return fmt.Errorf("bundle of %s carries the rows of %s", b.Org, b.Data.Org)
	}
	for _, f := range b.Auth {
		if !local(f.Path) {
			return fmt.Errorf("auth file %q is not a relative path inside the auth directory", f.Path)
		}
	}
	for _, f := range b.Media {
		h, ok := mediaHex(f.Path)
		if !ok {
			return fmt.Errorf("media %q is not a media id", f.Path)
		}
		if sum := sha256.Sum256(f.Data); hex.EncodeToString(sum[:]) != h {
			return fmt.Errorf("media %s: the bytes do not match the id", f.Path)
		}
	}
	return nil
}

// local reports whether p is a clean relative slash path that stays below
// its root.
func local(p string) bool {
	return p != "" && !strings.Contains(p, "\\") && path.Clean(p) == p && filepath.IsLocal(filepath.FromSlash(p))
}

// Import writes b on this node, all or nothing: media files first (shared
// by content, harmless alone), the auth directory into a temporary
// directory, then the rows in one transaction that, just before its
// commit, renames the directory into place. The imported organization is
// stopped and pending (see store.ImportOrg) until the move activates it.
func Import(ctx context.Context, st Store, dirs Dirs, b Bundle, now time.Time) error {
	if err := b.Check(); err != nil {
		return fmt.Errorf("import: %w: %w", ErrBadBundle, err)
	}
	org := b.Org
	if err := private.Dir(dirs.Auth); err != nil {
		return fmt.Errorf("import %s: %w", org, err)
	}
	for _, f := range b.Media {
		if err := writeMedia(dirs.Media, f); err != nil {
			return fmt.Errorf("import %s: media %s: %w", org, f.Path, err)
		}
	}
	if err := sweepTemps(dirs.Auth, org); err != nil {
		return fmt.Errorf("import %s: %w", org, err)
	}
	tmp, err := os.MkdirTemp(dirs.Auth, tempPrefix(org))
	if err != nil {
		return fmt.Errorf("import %s: %w", org, err)
	}
	defer os.RemoveAll(tmp) // nothing left once renamed
	if err := writeTree(tmp, b.Auth); err != nil {
		return fmt.Errorf("import %s: auth directory: %w", org, err)
	}
	final := filepath.Join(dirs.Auth, org)
	renamed := false
	err = st.ImportOrg(ctx, b.Data, b.Run, func() error {
		// Inside the transaction: a directory already there has no
		// committed rows (ImportOrg refused a registered organization), so
		// it is what a crashed import or a forgotten copy left: archived.
		if _, err := archive.NewDir(dirs.Auth).Move(org, "moved", now); err != nil {
			return fmt.Errorf("archive the auth directory already there: %w", err)
		}
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("put the auth directory in place: %w", err)
		}
		renamed = true
		return private.SyncDir(dirs.Auth)
	})
	if err != nil && renamed {
		// The rows are not committed: the directory goes back where
		// the deferred removal takes it.
		if rerr := os.Rename(final, tmp); rerr != nil {
			return fmt.Errorf("%w (and the auth directory could not be taken back: %v)", err, rerr)
		}
	}
	return err
}

// tempPrefix names an import's temporary directory: a dot keeps it from
// ever reading as an organization or an archive.
func tempPrefix(org string) string { return ".import-" + org + "-" }

// sweepTemps removes what an import of org killed midway left: partial
// copies, the source still has the whole.
func sweepTemps(authRoot, org string) error {
	matches, err := filepath.Glob(filepath.Join(authRoot, tempPrefix(org)+"*"))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			return fmt.Errorf("remove a partial import: %w", err)
		}
	}
	return nil
}

// writeTree writes files under root (which exists), directories 0700 and
// files 0600, each fsynced, and the directories too.
func writeTree(root string, files []File) error {
	if err := os.Chmod(root, private.DirMode); err != nil {
		return err
	}
	dirs := map[string]bool{root: true}
	for _, f := range files {
		if !local(f.Path) {
			return fmt.Errorf("file %q leaves the directory", f.Path)
		}
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		parent := filepath.Dir(p)
		if err := private.Dir(parent); err != nil {
			return err
		}
		dirs[parent] = true
		if err := writeFile(p, f.Data); err != nil {
			return err
		}
	}
	for d := range dirs {
		if err := private.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(p string, data []byte) error {
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, private.FileMode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(fh, bytes.NewReader(data)); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// writeMedia puts one media file in place unless a whole copy is there.
func writeMedia(dir string, f File) error {
	h, _ := mediaHex(f.Path)
	final := filepath.Join(dir, h)
	if st, err := os.Stat(final); err == nil && st.Size() == int64(len(f.Data)) {
		return nil
	}
	if err := private.Dir(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	_, err = tmp.Write(f.Data)
	if err == nil {
		err = tmp.Chmod(private.FileMode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return err
	}
	return private.SyncDir(dir)
}

// Forget removes org's rows from the source and archives its auth
// directory as <org>_moved_<ms>: the target owns the organization now.
func Forget(ctx context.Context, st Store, dirs Dirs, org string, now time.Time) error {
	if err := st.ForgetOrg(ctx, org); err != nil {
		return err
	}
	if _, err := archive.NewDir(dirs.Auth).Move(org, "moved", now); err != nil {
		return fmt.Errorf("forget %s: %w", org, err)
	}
	return nil
}

// Encode writes b as JSON.
func Encode(w io.Writer, b Bundle) error { return json.NewEncoder(w).Encode(b) }

// Decode reads one bundle of at most MaxBytes, numbers kept exact.
func Decode(r io.Reader) (Bundle, error) {
	dec := json.NewDecoder(io.LimitReader(r, MaxBytes+1))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return Bundle{}, fmt.Errorf("read bundle: %w", err)
	}
	return b, nil
}
