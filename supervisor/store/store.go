// Package store is the supervisor's durable state: one SQLite database,
// state_dir/supervisor/state.db (modernc.org/sqlite, no cgo), with schema
// migrations numbered in code. It holds the organizations with their holds
// (cooldowns, bans, Bad MAC history) and the tombstones of deleted ones;
// the outbox and the webhook queue get their own tables by later
// migrations, so that a status change and the events it causes can be
// committed in one transaction.
//
// Every change is one transaction with synchronous=FULL: a status the API
// shows has been committed, and survives a kill -9 or a power loss.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/private"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"

	// Pure Go, so the supervisor builds with CGO_ENABLED=0.
	_ "modernc.org/sqlite"
)

// Store is an open state.db. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	path string
	// events is what EnableEvents set; nil: no webhook events are kept.
	events *eventOptions
	// emitted is set by a transaction that inserted events and read after
	// its commit to tell the dispatcher.
	emitted atomic.Bool
}

// Open opens (creating if needed) the database at path and brings its
// schema up to date.
func Open(path string) (*Store, error) { return openDriver(path, "sqlite") }

// openDriver is Open through the database/sql driver registered as driver:
// tests put one in front of SQLite's to count the statements a call makes.
func openDriver(path, driver string) (*Store, error) {
	// state.db holds proxy passwords and its -wal recent changes: owner
	// only, whatever the umask, also for files an older version left.
	if err := private.Dir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("state store: %w", err)
	}
	if err := private.SQLite(path); err != nil {
		return nil, fmt.Errorf("state store: %w", err)
	}
	// WAL lets the API's readers and the runners' writers work at once;
	// busy_timeout makes a writer wait for another instead of failing
	// with SQLITE_BUSY; immediate transactions take the write lock up
	// front, so two writers never deadlock on a lock upgrade.
	q := url.Values{}
	for _, p := range []string{"foreign_keys(1)", "busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := (&url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}).String()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("state store %s: %w", path, err)
	}
	// SQLite runs one writer at a time anyway; queueing the runners'
	// commits in Go keeps them from sleeping in SQLite's busy handler,
	// which a boot of 1,500 organizations turned into SQLITE_BUSY errors.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, path: path}
	if err := s.migrate(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.path }

const orgColumns = `id, status, reason, run, linked, jid, hold_until, hold_reason, badmac, crashes,
	archive_pending, deleted, fingerprint, from_config, added_at, proxy, last_error`

// LoadOrgs returns every organization record, tombstones included.
func (s *Store) LoadOrgs(ctx context.Context) ([]lifecycle.Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+orgColumns+` FROM orgs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load organizations: %w", err)
	}
	defer rows.Close()
	var out []lifecycle.Record
	for rows.Next() {
		var (
			r                    lifecycle.Record
			status               string
			holdUntil, addedAt   int64
			badmacJSON           string
			run, linked, deleted bool
			fromConfig           bool
		)
		if err := rows.Scan(&r.ID, &status, &r.Reason, &run, &linked, &r.JID, &holdUntil, &r.Hold.Reason,
			&badmacJSON, &r.Crashes, &r.ArchivePending, &deleted, &r.Fingerprint, &fromConfig, &addedAt, &r.Proxy, &r.LastError); err != nil {
			return nil, fmt.Errorf("load organizations: %w", err)
		}
		if err := json.Unmarshal([]byte(badmacJSON), &r.BadMAC); err != nil {
			return nil, fmt.Errorf("load organization %s: bad MAC counter: %w", r.ID, err)
		}
		r.Status, r.Run, r.Linked, r.Deleted, r.FromConfig = state.Status(status), run, linked, deleted, fromConfig
		r.Hold.Until, r.AddedAt = fromMillis(holdUntil), fromMillis(addedAt)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load organizations: %w", err)
	}
	return out, nil
}

// SaveOrg writes one organization's record and the webhook events its
// change causes in one transaction, at at. A tombstone fails the
// organization's queued messages in that same transaction (failDeleted).
func (s *Store) SaveOrg(ctx context.Context, r lifecycle.Record, events []webhook.Event, at time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := saveOrg(ctx, tx, r, false, at); err != nil {
			return err
		}
		if r.Deleted {
			if err := s.failDeleted(ctx, tx, r.ID, at); err != nil {
				return err
			}
		}
		return s.emit(ctx, tx, events...)
	})
	if err != nil {
		return fmt.Errorf("save organization %s: %w", r.ID, err)
	}
	return nil
}

// DeleteOrg forgets a purged tombstone.
func (s *Store) DeleteOrg(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM orgs WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete organization %s: %w", id, err)
	}
	return nil
}

// execer is what saveOrg needs from a *sql.DB or *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// saveOrg upserts r; keepExisting leaves a row that is already there alone
// (the legacy import must never overwrite newer state).
func saveOrg(ctx context.Context, db execer, r lifecycle.Record, keepExisting bool, at time.Time) error {
	counter, err := json.Marshal(r.BadMAC)
	if err != nil {
		return err
	}
	conflict := `ON CONFLICT(id) DO UPDATE SET status = excluded.status, reason = excluded.reason,
		run = excluded.run, linked = excluded.linked, jid = excluded.jid, hold_until = excluded.hold_until,
		hold_reason = excluded.hold_reason, badmac = excluded.badmac, crashes = excluded.crashes,
		archive_pending = excluded.archive_pending, deleted = excluded.deleted,
		fingerprint = excluded.fingerprint, from_config = excluded.from_config,
		added_at = excluded.added_at, proxy = excluded.proxy, last_error = excluded.last_error,
		updated_at = excluded.updated_at`
	if keepExisting {
		conflict = `ON CONFLICT(id) DO NOTHING`
	}
	_, err = db.ExecContext(ctx, `INSERT INTO orgs (`+orgColumns+`, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) `+conflict,
		r.ID, string(r.Status), r.Reason, r.Run, r.Linked, r.JID, millis(r.Hold.Until), r.Hold.Reason,
		string(counter), r.Crashes, r.ArchivePending, r.Deleted, r.Fingerprint, r.FromConfig,
		millis(r.AddedAt), r.Proxy, r.LastError, millis(at))
	return err
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

var errNoRows = sql.ErrNoRows

func isNoRows(err error) bool { return errors.Is(err, errNoRows) }

// tx runs fn in one transaction; after a commit that inserted webhook
// events, the dispatcher is told.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	// A failed transaction leaves the flag as it was: clearing it could
	// swallow the wake-up of a commit that has not read it yet, and a
	// wake-up too many costs one cheap round.
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if s.emitted.Swap(false) && s.events != nil && s.events.notify != nil {
		s.events.notify()
	}
	return nil
}
