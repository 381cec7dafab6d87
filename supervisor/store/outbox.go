package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

const messageColumns = `seq, id, org, recipient, text, wa_id, status, reason, coalesce(idempotency_key, ''),
	coalesce(broadcast, ''), queued_at, sending_at, sent_at, delivered_at, read_at, failed_at, attempts, media`

type scanner interface{ Scan(dest ...any) error }

func scanMessage(row scanner) (outbox.Message, error) {
	var (
		m                                         outbox.Message
		status                                    string
		queued, sending, sent, delivered, read, f int64
	)
	err := row.Scan(&m.Seq, &m.ID, &m.Org, &m.To, &m.Text, &m.WAID, &status, &m.Reason, &m.IdempotencyKey,
		&m.Broadcast, &queued, &sending, &sent, &delivered, &read, &f, &m.Attempts, &m.Media)
	if err != nil {
		return m, err
	}
	m.Status = outbox.Status(status)
	m.QueuedAt, m.SendingAt, m.SentAt = fromMillis(queued), fromMillis(sending), fromMillis(sent)
	m.DeliveredAt, m.ReadAt, m.FailedAt = fromMillis(delivered), fromMillis(read), fromMillis(f)
	return m, nil
}

// scanMessages reads every row (of a SELECT or an UPDATE ... RETURNING).
func scanMessages(rows *sql.Rows) ([]outbox.Message, error) {
	defer rows.Close()
	var out []outbox.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// registered refuses a message or broadcast for an organization that is
// not registered (never was, or deleted): checked in the transaction that
// inserts it, so a POST racing a DELETE either commits first, and the
// tombstone's transaction fails what it queued, or is refused here.
func registered(ctx context.Context, tx *sql.Tx, org string) error {
	var ok bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM orgs WHERE id = ? AND deleted = 0)`, org).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("organization %s: %w", org, outbox.ErrUnknownOrg)
	}
	return nil
}

// InsertMessage commits a new queued message, or returns the one already
// accepted with the same idempotency key (created false).
func (s *Store) InsertMessage(ctx context.Context, m outbox.Message) (outbox.Message, bool, error) {
	var out outbox.Message
	created := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := registered(ctx, tx, m.Org); err != nil {
			return err
		}
		if m.IdempotencyKey != "" {
			old, err := scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE org = ? AND idempotency_key = ?`,
				m.Org, m.IdempotencyKey))
			if err == nil {
				out = old
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		var err error
		out, err = insertMessage(ctx, tx, m)
		created = err == nil
		return err
	})
	if err != nil {
		return outbox.Message{}, false, fmt.Errorf("queue message for %s: %w", m.Org, err)
	}
	return out, created, nil
}

func insertMessage(ctx context.Context, tx *sql.Tx, m outbox.Message) (outbox.Message, error) {
	if err := mediaStored(ctx, tx, m.Media); err != nil {
		return m, err
	}
	err := tx.QueryRowContext(ctx, `INSERT INTO messages (id, org, recipient, text, wa_id, status, idempotency_key, broadcast, queued_at, media)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		m.ID, m.Org, m.To, m.Text, m.WAID, string(outbox.Queued), nullable(m.IdempotencyKey), nullable(m.Broadcast),
		millis(m.QueuedAt), m.Media).Scan(&m.Seq)
	m.Status = outbox.Queued
	return m, err
}

// InsertBroadcast commits a job and one queued message per recipient in one
// transaction, or returns the job already accepted with the same key.
func (s *Store) InsertBroadcast(ctx context.Context, b outbox.Broadcast, msgs []outbox.Message) (outbox.Broadcast, bool, error) {
	var out outbox.Broadcast
	created := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := registered(ctx, tx, b.Org); err != nil {
			return err
		}
		if b.IdempotencyKey != "" {
			old, err := scanBroadcast(tx.QueryRowContext(ctx, `SELECT `+broadcastColumns+` FROM broadcasts WHERE org = ? AND idempotency_key = ?`,
				b.Org, b.IdempotencyKey))
			if err == nil {
				out, err = withRecipientsHash(ctx, tx, old)
				return err
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if err := mediaStored(ctx, tx, b.Media); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO broadcasts (id, org, text, status, idempotency_key, total, created_at, recipients_hash, media)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`, b.ID, b.Org, b.Text, string(outbox.JobQueued),
			nullable(b.IdempotencyKey), b.Total, millis(b.CreatedAt), b.RecipientsHash, b.Media).Scan(&b.Seq); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO messages (id, org, recipient, text, wa_id, status, broadcast, queued_at, media)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, m := range msgs {
			if _, err := stmt.ExecContext(ctx, m.ID, m.Org, m.To, m.Text, m.WAID, string(outbox.Queued), b.ID, millis(m.QueuedAt), m.Media); err != nil {
				return err
			}
		}
		b.Status, b.Counts = outbox.JobQueued, outbox.Counts{Pending: len(msgs)}
		out, created = b, true
		return nil
	})
	if err != nil {
		return outbox.Broadcast{}, false, fmt.Errorf("queue broadcast for %s: %w", b.Org, err)
	}
	return out, created, nil
}

// withRecipientsHash fills in the recipients hash of a job stored before
// it was kept, from the job's own messages (one per recipient), and stores
// it: an idempotent retry is then judged by its recipients like any other.
func withRecipientsHash(ctx context.Context, tx *sql.Tx, b outbox.Broadcast) (outbox.Broadcast, error) {
	if b.RecipientsHash != "" {
		return b, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT recipient FROM messages WHERE broadcast = ?`, b.ID)
	if err != nil {
		return b, err
	}
	defer rows.Close()
	var to []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return b, err
		}
		to = append(to, r)
	}
	if err := rows.Err(); err != nil {
		return b, err
	}
	b.RecipientsHash = outbox.RecipientsHash(to)
	_, err = tx.ExecContext(ctx, `UPDATE broadcasts SET recipients_hash = ? WHERE id = ?`, b.RecipientsHash, b.ID)
	return b, err
}

// Message returns one message of org.
func (s *Store) Message(ctx context.Context, org, id string) (outbox.Message, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ? AND org = ?`, id, org))
	if errors.Is(err, sql.ErrNoRows) {
		return m, outbox.ErrNotFound
	}
	return m, err
}

// Messages lists org's messages, newest first.
func (s *Store) Messages(ctx context.Context, org string, f outbox.Filter) ([]outbox.Message, error) {
	q := `SELECT ` + messageColumns + ` FROM messages WHERE org = ?`
	args := []any{org}
	if f.AfterSeq > 0 {
		q += ` AND seq < ?`
		args = append(args, f.AfterSeq)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list messages of %s: %w", org, err)
	}
	return scanMessages(rows)
}

// NextMessage is the oldest message org may send at now: single messages
// before those of the active broadcasts jobs, none held back until later
// (a 463 holds the refused message), and, while the organization is
// restricted, only to contacts it knows.
func (s *Store) NextMessage(ctx context.Context, org string, jobs []string, restricted bool, now time.Time) (outbox.Message, bool, error) {
	known := ` AND not_before <= ?2`
	if restricted {
		known += ` AND recipient IN (SELECT phone FROM contacts WHERE org = messages.org)`
	}
	m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE org = ?1 AND status = 'queued' AND broadcast IS NULL`+known+` ORDER BY seq LIMIT 1`, org, millis(now)))
	if err == nil {
		return m, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return m, false, fmt.Errorf("next message of %s: %w", org, err)
	}
	var best outbox.Message
	found := false
	for _, job := range jobs {
		m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages
			WHERE broadcast = ?1 AND status = 'queued'`+known+` ORDER BY seq LIMIT 1`, job, millis(now)))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return m, false, fmt.Errorf("next message of %s: %w", org, err)
		}
		if !found || m.Seq < best.Seq {
			best, found = m, true
		}
	}
	return best, found, nil
}

const countColumns = `org,
		sum(status IN ('queued', 'sending')),
		sum(sent_at >= ?1 AND status IN ('sent', 'delivered', 'read')),
		sum(status = 'failed' AND failed_at >= ?1)`

// OrgCounts counts one organization's pending messages and those sent and
// failed since dayStart.
func (s *Store) OrgCounts(ctx context.Context, org string, dayStart time.Time) (state.Outbox, error) {
	var c state.Outbox
	var o sql.NullString
	var q, sent, failed sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT `+countColumns+` FROM messages WHERE org = ?2`, millis(dayStart), org).
		Scan(&o, &q, &sent, &failed)
	if err != nil {
		return c, fmt.Errorf("count messages of %s: %w", org, err)
	}
	c.Queued, c.SentToday, c.FailedToday = int(q.Int64), int(sent.Int64), int(failed.Int64)
	return c, nil
}

// OutboxCounts counts every organization's pending messages and those sent
// and failed since dayStart.
func (s *Store) OutboxCounts(ctx context.Context, dayStart time.Time) (map[string]state.Outbox, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+countColumns+` FROM messages GROUP BY org`, millis(dayStart))
	if err != nil {
		return nil, fmt.Errorf("count messages: %w", err)
	}
	defer rows.Close()
	out := map[string]state.Outbox{}
	for rows.Next() {
		var org string
		var c state.Outbox
		if err := rows.Scan(&org, &c.Queued, &c.SentToday, &c.FailedToday); err != nil {
			return nil, err
		}
		out[org] = c
	}
	return out, rows.Err()
}

func (s *Store) exec(ctx context.Context, what, q string, args ...any) error {
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
