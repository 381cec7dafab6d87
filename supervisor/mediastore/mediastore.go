// Package mediastore keeps the files messages carry: each stored once by
// content under state_dir/media/ (0700, files 0600), named by the hex
// SHA-256 of its bytes, with its MIME type, file name and size in state.db.
// The outbox reads a file at send time and hands its bytes to the worker,
// which can open nothing outside its own directory.
//
// A file is written to a temporary file, fsynced and renamed before its
// row is committed, so a row never names a half-written file, whatever
// kill lands when. Retention deletes the row, then the file, under the
// same lock as an upload, so that an upload of the same bytes meanwhile
// can neither lose its file nor be left without its row.
package mediastore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// Prefix starts every media id; the hex SHA-256 of the bytes follows.
const Prefix = "sha256:"

// Info is a stored file's description.
type Info struct {
	ID       string
	MIME     string
	Filename string
	Size     int64
	StoredAt time.Time
}

// ErrNotFound: no file has that id.
var ErrNotFound = errors.New("no such media")

// Store keeps the rows; *store.Store implements it.
type Store interface {
	PutMedia(ctx context.Context, info Info) error
	MediaInfo(ctx context.Context, id string) (Info, error)
	// PruneMedia deletes up to limit rows stored before cutoff that no
	// queued or sending message names, and returns their ids.
	PruneMedia(ctx context.Context, cutoff time.Time, limit int) ([]string, error)
}

// Library is the media directory and its rows.
type Library struct {
	dir   string
	store Store
	log   *slog.Logger
	// mu orders uploads and pruning (see the package comment).
	mu sync.Mutex
}

// Open creates dir (0700) if missing and returns its library.
func Open(dir string, st Store, log *slog.Logger) (*Library, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("media directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("media directory %s: %w", dir, err)
	}
	return &Library{dir: dir, store: st, log: log}, nil
}

// ID is the media id of data.
func ID(data []byte) string {
	sum := sha256.Sum256(data)
	return Prefix + hex.EncodeToString(sum[:])
}

func (l *Library) path(id string) string {
	return filepath.Join(l.dir, strings.TrimPrefix(id, Prefix))
}

// Put stores data (once: the same bytes again only refresh the row's
// name, type and time) and returns its description.
func (l *Library) Put(ctx context.Context, data []byte, mime, filename string, now time.Time) (Info, error) {
	info := Info{ID: ID(data), MIME: mime, Filename: filename, Size: int64(len(data)), StoredAt: now}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.write(info.ID, data); err != nil {
		return Info{}, err
	}
	if err := l.store.PutMedia(ctx, info); err != nil {
		return Info{}, fmt.Errorf("record media %s: %w", info.ID, err)
	}
	return info, nil
}

// write puts data in place unless a whole copy is there already.
func (l *Library) write(id string, data []byte) error {
	final := l.path(id)
	if st, err := os.Stat(final); err == nil && st.Size() == int64(len(data)) {
		return nil
	}
	tmp, err := os.CreateTemp(l.dir, ".upload-*")
	if err != nil {
		return fmt.Errorf("store media %s: %w", id, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("store media %s: %w", id, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("store media %s: %w", id, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("store media %s: %w", id, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store media %s: %w", id, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("store media %s: %w", id, err)
	}
	return syncDir(l.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync media directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync media directory: %w", err)
	}
	return nil
}

// Load reads a file for sending; it implements outbox.Media. Bytes that no
// longer hash to their id (a damaged disk) are refused rather than sent.
func (l *Library) Load(ctx context.Context, id string) (outbox.MediaFile, error) {
	info, err := l.store.MediaInfo(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return outbox.MediaFile{}, outbox.ErrMediaMissing
	}
	if err != nil {
		return outbox.MediaFile{}, err
	}
	data, err := os.ReadFile(l.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return outbox.MediaFile{}, fmt.Errorf("media %s: file is gone: %w", id, outbox.ErrMediaMissing)
	}
	if err != nil {
		return outbox.MediaFile{}, fmt.Errorf("read media %s: %w", id, err)
	}
	if ID(data) != id {
		return outbox.MediaFile{}, fmt.Errorf("media %s: file no longer matches its hash: %w", id, outbox.ErrMediaMissing)
	}
	return outbox.MediaFile{Data: data, MIME: info.MIME, Filename: info.Filename}, nil
}

// pruneBatch bounds one pruning transaction.
const pruneBatch = 500

// Prune deletes the files stored before cutoff that no pending message
// names; it implements retention.Media.
func (l *Library) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	total := 0
	for {
		ids, err := l.store.PruneMedia(ctx, cutoff, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune media: %w", err)
		}
		for _, id := range ids {
			if err := os.Remove(l.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
				// The row is gone: the file is an orphan no message can
				// name; say so and go on.
				l.log.Error("retention: a pruned media file could not be deleted", "media", id, "err", err)
			}
		}
		total += len(ids)
		if len(ids) < pruneBatch {
			return total, nil
		}
	}
}
