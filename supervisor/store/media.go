package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/mediastore"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// PutMedia records an uploaded file; the same bytes again take the newer
// name, type and time.
func (s *Store) PutMedia(ctx context.Context, m mediastore.Info) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO media (id, mime, filename, size, stored_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET mime = excluded.mime, filename = excluded.filename, stored_at = excluded.stored_at`,
		m.ID, m.MIME, m.Filename, m.Size, millis(m.StoredAt))
	if err != nil {
		return fmt.Errorf("record media %s: %w", m.ID, err)
	}
	return nil
}

// MediaInfo returns one file's row.
func (s *Store) MediaInfo(ctx context.Context, id string) (mediastore.Info, error) {
	m := mediastore.Info{ID: id}
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT mime, filename, size, stored_at FROM media WHERE id = ?`, id).
		Scan(&m.MIME, &m.Filename, &m.Size, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return m, mediastore.ErrNotFound
	}
	if err != nil {
		return m, fmt.Errorf("media %s: %w", id, err)
	}
	m.StoredAt = fromMillis(at)
	return m, nil
}

// mediaStored refuses a message naming a file that is not stored, in the
// transaction that inserts it: the pruner deletes a row only while no
// pending message names it, so the two cannot cross.
func mediaStored(ctx context.Context, tx *sql.Tx, id string) error {
	if id == "" {
		return nil
	}
	var ok bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM media WHERE id = ?)`, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return &outbox.InputError{Field: "media", Msg: fmt.Sprintf("%s names no uploaded file; POST /v1/orgs/{id}/media first", id)}
	}
	return nil
}

// PruneMedia deletes up to limit files stored before cutoff that no queued
// or sending message names, and returns their ids.
func (s *Store) PruneMedia(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM media WHERE stored_at < ? AND NOT EXISTS
			(SELECT 1 FROM messages WHERE media = media.id AND status IN ('queued', 'sending')) LIMIT ?`, millis(cutoff), limit)
		if err != nil {
			return err
		}
		var args []any
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids, args = append(ids, id), append(args, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM media WHERE id IN (`+marks(len(args))+`)`, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prune media: %w", err)
	}
	return ids, nil
}
