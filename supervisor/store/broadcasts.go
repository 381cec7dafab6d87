package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// broadcastColumns end with the job's counts: the counter columns that
// triggers keep (migrations), so that no read of a job counts its messages.
const broadcastColumns = `seq, id, org, text, status, coalesce(idempotency_key, ''), total, created_at,
	started_at, finished_at, progress_at, pending_count, sent_count, failed_count, recipients_hash, media`

func scanBroadcast(row scanner) (outbox.Broadcast, error) {
	var (
		b                                 outbox.Broadcast
		status                            string
		created, started, finished, moved int64
	)
	err := row.Scan(&b.Seq, &b.ID, &b.Org, &b.Text, &status, &b.IdempotencyKey, &b.Total, &created, &started, &finished, &moved,
		&b.Counts.Pending, &b.Counts.Sent, &b.Counts.Failed, &b.RecipientsHash, &b.Media)
	b.Status = outbox.JobStatus(status)
	b.CreatedAt, b.StartedAt, b.FinishedAt, b.ProgressAt = fromMillis(created), fromMillis(started), fromMillis(finished), fromMillis(moved)
	return b, err
}

// jobCounts returns a broadcast's messages by outcome, as its counter
// columns hold them.
func jobCounts(ctx context.Context, q querier, id string) (outbox.Counts, error) {
	var c outbox.Counts
	err := q.QueryRowContext(ctx, `SELECT pending_count, sent_count, failed_count FROM broadcasts WHERE id = ?`,
		id).Scan(&c.Pending, &c.Sent, &c.Failed)
	if err != nil {
		return c, fmt.Errorf("count broadcast %s: %w", id, err)
	}
	return c, nil
}

// Broadcast returns one job of org with its counts.
func (s *Store) Broadcast(ctx context.Context, org, id string) (outbox.Broadcast, error) {
	b, err := scanBroadcast(s.db.QueryRowContext(ctx, `SELECT `+broadcastColumns+` FROM broadcasts WHERE id = ? AND org = ?`, id, org))
	if errors.Is(err, sql.ErrNoRows) {
		return b, outbox.ErrNotFound
	}
	if err != nil {
		return b, fmt.Errorf("broadcast %s: %w", id, err)
	}
	return b, nil
}

// Broadcasts lists org's jobs, newest first, with their counts.
func (s *Store) Broadcasts(ctx context.Context, org string, limit int) ([]outbox.Broadcast, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+broadcastColumns+` FROM broadcasts WHERE org = ? ORDER BY seq DESC LIMIT ?`, org, limit)
	if err != nil {
		return nil, fmt.Errorf("list broadcasts of %s: %w", org, err)
	}
	var out []outbox.Broadcast
	for rows.Next() {
		b, err := scanBroadcast(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// OpenJobs returns the jobs that still have work, oldest first, host-wide.
func (s *Store) OpenJobs(ctx context.Context) ([]outbox.Broadcast, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+broadcastColumns+` FROM broadcasts
		WHERE status IN ('queued', 'sending', 'stalled') ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("list open broadcasts: %w", err)
	}
	defer rows.Close()
	var out []outbox.Broadcast
	for rows.Next() {
		b, err := scanBroadcast(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// SetJobStatus moves an open job between queued, sending and stalled;
// sending stamps its start (and counts as progress). It reports false for
// a job that is no longer open: done and cancelled are final, whatever a
// scheduler decided from an older view.
func (s *Store) SetJobStatus(ctx context.Context, id string, status outbox.JobStatus, at time.Time) (bool, error) {
	if !status.Active() {
		return false, fmt.Errorf("set broadcast %s: %s is not an open status", id, status)
	}
	q := `UPDATE broadcasts SET status = ?1 WHERE id = ?2 AND status IN ('queued', 'sending', 'stalled')`
	if status == outbox.JobSending {
		q = `UPDATE broadcasts SET status = ?1, started_at = CASE WHEN started_at = 0 THEN ?3 ELSE started_at END, progress_at = ?3
			WHERE id = ?2 AND status IN ('queued', 'sending', 'stalled')`
	}
	res, err := s.db.ExecContext(ctx, q, string(status), id, millis(at))
	if err != nil {
		return false, fmt.Errorf("set broadcast %s %s: %w", id, status, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("set broadcast %s %s: %w", id, status, err)
	}
	return n == 1, nil
}

// JobStatus returns a job's status.
func (s *Store) JobStatus(ctx context.Context, id string) (outbox.JobStatus, error) {
	var st string
	err := s.db.QueryRowContext(ctx, `SELECT status FROM broadcasts WHERE id = ?`, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", outbox.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("status of broadcast %s: %w", id, err)
	}
	return outbox.JobStatus(st), nil
}

// FinishDrained marks done every open job with nothing left to send (a
// database from before jobs were finished with their last message).
func (s *Store) FinishDrained(ctx context.Context, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM broadcasts WHERE status IN ('queued', 'sending', 'stalled')`)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := s.finishDrained(ctx, tx, id, at); err != nil {
				return err
			}
		}
		return nil
	})
}

// CancelBroadcast cancels a job that still has work: its queued messages
// fail with reason cancelled (one being sent right now finishes). It
// returns the job and the messages it failed.
func (s *Store) CancelBroadcast(ctx context.Context, org, id string, at time.Time) (outbox.Broadcast, []outbox.Message, error) {
	var failed []outbox.Message
	err := s.tx(ctx, func(tx *sql.Tx) error {
		b, err := scanBroadcast(tx.QueryRowContext(ctx, `SELECT `+broadcastColumns+` FROM broadcasts WHERE id = ? AND org = ?`, id, org))
		if errors.Is(err, sql.ErrNoRows) {
			return outbox.ErrNotFound
		}
		if err != nil {
			return err
		}
		if !b.Status.Active() {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET status = 'cancelled', finished_at = ? WHERE id = ?`, millis(at), id); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `UPDATE messages SET status = 'failed', reason = 'cancelled', failed_at = ?
			WHERE broadcast = ? AND status = 'queued' RETURNING `+messageColumns, millis(at), id)
		if err != nil {
			return err
		}
		if failed, err = scanMessages(rows); err != nil {
			return err
		}
		for _, m := range failed {
			if err := s.emit(ctx, tx, messageEvent(m, outbox.Failed, m.Reason, at)); err != nil {
				return err
			}
		}
		if s.events == nil {
			return nil
		}
		e, err := jobEvent(ctx, tx, webhook.BroadcastDone, id, at)
		if err != nil {
			return err
		}
		return s.emit(ctx, tx, e)
	})
	if err != nil {
		if errors.Is(err, outbox.ErrNotFound) {
			return outbox.Broadcast{}, nil, err
		}
		return outbox.Broadcast{}, nil, fmt.Errorf("cancel broadcast %s: %w", id, err)
	}
	b, err := s.Broadcast(ctx, org, id)
	return b, failed, err
}

// querier reads in a transaction or outside one.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
