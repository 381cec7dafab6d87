package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

const messageColumns = `seq, id, org, recipient, text, wa_id, status, reason, coalesce(idempotency_key, ''),
	coalesce(broadcast, ''), queued_at, sending_at, sent_at, delivered_at, read_at, failed_at, attempts`

type scanner interface{ Scan(dest ...any) error }

func scanMessage(row scanner) (outbox.Message, error) {
	var (
		m                                         outbox.Message
		status                                    string
		queued, sending, sent, delivered, read, f int64
	)
	err := row.Scan(&m.Seq, &m.ID, &m.Org, &m.To, &m.Text, &m.WAID, &status, &m.Reason, &m.IdempotencyKey,
		&m.Broadcast, &queued, &sending, &sent, &delivered, &read, &f, &m.Attempts)
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

// InsertMessage commits a new queued message, or returns the one already
// accepted with the same idempotency key (created false).
func (s *Store) InsertMessage(ctx context.Context, m outbox.Message) (outbox.Message, bool, error) {
	var out outbox.Message
	created := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
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
	err := tx.QueryRowContext(ctx, `INSERT INTO messages (id, org, recipient, text, wa_id, status, idempotency_key, broadcast, queued_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		m.ID, m.Org, m.To, m.Text, m.WAID, string(outbox.Queued), nullable(m.IdempotencyKey), nullable(m.Broadcast),
		millis(m.QueuedAt)).Scan(&m.Seq)
	m.Status = outbox.Queued
	return m, err
}

// InsertBroadcast commits a job and one queued message per recipient in one
// transaction, or returns the job already accepted with the same key.
func (s *Store) InsertBroadcast(ctx context.Context, b outbox.Broadcast, msgs []outbox.Message) (outbox.Broadcast, bool, error) {
	var out outbox.Broadcast
	created := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if b.IdempotencyKey != "" {
			old, err := scanBroadcast(tx.QueryRowContext(ctx, `SELECT `+broadcastColumns+` FROM broadcasts WHERE org = ? AND idempotency_key = ?`,
				b.Org, b.IdempotencyKey))
			if err == nil {
				out = old
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO broadcasts (id, org, text, status, idempotency_key, total, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq`, b.ID, b.Org, b.Text, string(outbox.JobQueued),
			nullable(b.IdempotencyKey), b.Total, millis(b.CreatedAt)).Scan(&b.Seq); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO messages (id, org, recipient, text, wa_id, status, broadcast, queued_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, m := range msgs {
			if _, err := stmt.ExecContext(ctx, m.ID, m.Org, m.To, m.Text, m.WAID, string(outbox.Queued), b.ID, millis(m.QueuedAt)); err != nil {
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
	if !created {
		out.Counts, err = s.jobCounts(ctx, out.ID)
	}
	return out, created, err
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

// NextMessage is the oldest message org may send now: single messages
// before those of the active broadcasts jobs, and, while the organization
// is restricted, only to contacts it knows.
func (s *Store) NextMessage(ctx context.Context, org string, jobs []string, restricted bool) (outbox.Message, bool, error) {
	known := ``
	if restricted {
		known = ` AND recipient IN (SELECT phone FROM contacts WHERE org = messages.org)`
	}
	m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE org = ? AND status = 'queued' AND broadcast IS NULL`+known+` ORDER BY seq LIMIT 1`, org))
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
			WHERE broadcast = ? AND status = 'queued'`+known+` ORDER BY seq LIMIT 1`, job))
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

// MarkSending commits that the message is about to be sent: from here a
// crash means it may have reached WhatsApp, and it is sent again with the
// same ID. It reports false when the message is no longer queued: cancelled
// or expired since it was picked, it must not go.
//
// The attempt counts as the organization's last send for the pacing that
// resumes after a restart, whatever its answer: a refused send was a send.
func (s *Store) MarkSending(ctx context.Context, m outbox.Message, at time.Time) (bool, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET status = 'sending', sending_at = ?, attempts = attempts + 1
			WHERE id = ? AND status = 'queued'`, millis(at), m.ID)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return lastSent(ctx, tx, m.Org, at)
	})
	if err != nil {
		return false, fmt.Errorf("mark sending %s: %w", m.ID, err)
	}
	return n == 1, nil
}

func lastSent(ctx context.Context, tx *sql.Tx, org string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO senders (org, last_sent_at) VALUES (?, ?)
		ON CONFLICT (org) DO UPDATE SET last_sent_at = max(last_sent_at, excluded.last_sent_at)`, org, millis(at))
	return err
}

// MarkSent records the server's ack: the recipient becomes a known contact,
// the organization's last send is now, and the job made progress (and is
// done when this was its last message, in the same transaction). It
// reports false when the message had left sending another way (failed as
// its organization was deleted): it is not counted twice.
func (s *Store) MarkSent(ctx context.Context, m outbox.Message, at time.Time) (bool, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// A receipt may have overtaken the ack: the message is delivered
		// already and only lacks its sent_at.
		res, err := tx.ExecContext(ctx, `UPDATE messages SET sent_at = ?,
			status = CASE WHEN status = 'sending' THEN 'sent' ELSE status END
			WHERE id = ? AND (status = 'sending' OR (status IN ('delivered', 'read') AND sent_at = 0))`,
			millis(at), m.ID)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (org, phone) VALUES (?, ?) ON CONFLICT DO NOTHING`, m.Org, m.To); err != nil {
			return err
		}
		if err := lastSent(ctx, tx, m.Org, at); err != nil {
			return err
		}
		return progress(ctx, tx, m.Broadcast, at)
	})
	if err != nil {
		return false, fmt.Errorf("mark sent %s: %w", m.ID, err)
	}
	return n == 1, nil
}

// Requeue puts a message whose send had no known outcome back in line,
// unless its broadcast was cancelled meanwhile: then it fails with reason
// cancelled, as the job's other unsent messages did. It returns the
// message as it is now; a message that left sending another way (a
// receipt overtook the lost answer) is returned unchanged.
func (s *Store) Requeue(ctx context.Context, m outbox.Message, at time.Time) (outbox.Message, error) {
	var out outbox.Message
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET
			status = CASE WHEN broadcast IN (SELECT id FROM broadcasts WHERE status = 'cancelled') THEN 'failed' ELSE 'queued' END,
			reason = CASE WHEN broadcast IN (SELECT id FROM broadcasts WHERE status = 'cancelled') THEN 'cancelled' ELSE reason END,
			failed_at = CASE WHEN broadcast IN (SELECT id FROM broadcasts WHERE status = 'cancelled') THEN ?1 ELSE failed_at END
			WHERE id = ?2 AND status = 'sending'`, millis(at), m.ID); err != nil {
			return err
		}
		var err error
		out, err = scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, m.ID))
		return err
	})
	if err != nil {
		return m, fmt.Errorf("requeue %s: %w", m.ID, err)
	}
	return out, nil
}

// Fail gives a pending message up.
func (s *Store) Fail(ctx context.Context, m outbox.Message, reason string, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET status = 'failed', reason = ?, failed_at = ?
			WHERE id = ? AND status IN ('queued', 'sending')`, reason, millis(at), m.ID); err != nil {
			return err
		}
		return progress(ctx, tx, m.Broadcast, at)
	})
}

// progress notes that a message of job reached its end, and finishes the
// job when it was the last: in the message's own transaction, so that no
// crash can leave a job open with nothing left to send.
func progress(ctx context.Context, tx *sql.Tx, job string, at time.Time) error {
	if job == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET progress_at = ? WHERE id = ?`, millis(at), job); err != nil {
		return err
	}
	return finishDrained(ctx, tx, job, at)
}

// finishDrained marks job done when it is open and none of its messages is
// pending any more.
func finishDrained(ctx context.Context, tx *sql.Tx, job string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE broadcasts SET status = 'done', finished_at = ?1
		WHERE id = ?2 AND status IN ('queued', 'sending', 'stalled')
		AND NOT EXISTS (SELECT 1 FROM messages WHERE broadcast = ?2 AND status IN ('queued', 'sending'))`, millis(at), job)
	return err
}

// Receipt moves org's messages with these WhatsApp IDs forward to status
// (delivered or read), never back; it returns the messages it changed.
func (s *Store) Receipt(ctx context.Context, org string, waIDs []string, status outbox.Status, at time.Time) ([]outbox.Message, error) {
	if len(waIDs) == 0 {
		return nil, nil
	}
	col, from := "delivered_at", `'sending', 'sent'`
	if status == outbox.Read {
		col, from = "read_at", `'sending', 'sent', 'delivered'`
	}
	marks := make([]string, len(waIDs))
	args := []any{string(status), millis(at), org}
	for i, id := range waIDs {
		marks[i] = fmt.Sprintf("?%d", i+4)
		args = append(args, id)
	}
	var out []outbox.Message
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// A receipt may overtake the ack of a message still sending: it
		// moves on now, and the ack adds its sent_at.
		rows, err := tx.QueryContext(ctx, `UPDATE messages SET status = ?1, `+col+` = ?2
			WHERE org = ?3 AND wa_id IN (`+strings.Join(marks, ", ")+`) AND status IN (`+from+`) RETURNING `+messageColumns, args...)
		if err != nil {
			return err
		}
		if out, err = scanMessages(rows); err != nil {
			return err
		}
		for _, m := range out {
			if m.Broadcast != "" {
				if err := finishDrained(ctx, tx, m.Broadcast, at); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("receipt for %s: %w", org, err)
	}
	return out, nil
}

// AddContact remembers a number that wrote to the organization: a chat
// exists, so the new-chat restriction does not hold messages to it.
func (s *Store) AddContact(ctx context.Context, org, phone string) error {
	return s.exec(ctx, "add contact", `INSERT INTO contacts (org, phone) VALUES (?, ?) ON CONFLICT DO NOTHING`, org, phone)
}

// Restrict holds org's messages to new contacts until until.
func (s *Store) Restrict(ctx context.Context, org string, until time.Time) error {
	return s.exec(ctx, "restrict", `INSERT INTO senders (org, restricted_until) VALUES (?, ?)
		ON CONFLICT (org) DO UPDATE SET restricted_until = excluded.restricted_until`, org, millis(until))
}

// Senders returns every organization's restriction and last send.
func (s *Store) Senders(ctx context.Context) (map[string]outbox.SenderState, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT org, restricted_until, last_sent_at FROM senders`)
	if err != nil {
		return nil, fmt.Errorf("load senders: %w", err)
	}
	defer rows.Close()
	out := map[string]outbox.SenderState{}
	for rows.Next() {
		var org string
		var until, last int64
		if err := rows.Scan(&org, &until, &last); err != nil {
			return nil, err
		}
		out[org] = outbox.SenderState{RestrictedUntil: fromMillis(until), LastSentAt: fromMillis(last)}
	}
	return out, rows.Err()
}

// ExpireQueued fails the messages queued before before; it returns them.
func (s *Store) ExpireQueued(ctx context.Context, before, now time.Time) ([]outbox.Message, error) {
	var out []outbox.Message
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE messages SET status = 'failed', reason = 'expired', failed_at = ?
			WHERE status = 'queued' AND queued_at < ? RETURNING `+messageColumns, millis(now), millis(before))
		if err != nil {
			return err
		}
		if out, err = scanMessages(rows); err != nil {
			return err
		}
		for _, m := range out {
			if err := progress(ctx, tx, m.Broadcast, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire messages: %w", err)
	}
	return out, nil
}

// FailPending fails every pending message of org (it was deleted).
func (s *Store) FailPending(ctx context.Context, org, reason string, at time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET status = 'failed', reason = ?, failed_at = ?
			WHERE org = ? AND status IN ('queued', 'sending')`, reason, millis(at), org)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		_, err = tx.ExecContext(ctx, `UPDATE broadcasts SET status = 'cancelled', finished_at = ?
			WHERE org = ? AND status IN ('queued', 'sending', 'stalled')`, millis(at), org)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("fail pending messages of %s: %w", org, err)
	}
	return int(n), nil
}

// RecoverSending puts back in line the messages a crash left sending: they
// may have reached WhatsApp, and go again with the same ID.
// Those of a cancelled broadcast fail with reason cancelled instead; they
// are returned.
func (s *Store) RecoverSending(ctx context.Context, at time.Time) (int, []outbox.Message, error) {
	var n int64
	var cancelled []outbox.Message
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE messages SET status = 'failed', reason = 'cancelled', failed_at = ?
			WHERE status = 'sending' AND broadcast IN (SELECT id FROM broadcasts WHERE status = 'cancelled')
			RETURNING `+messageColumns, millis(at))
		if err != nil {
			return err
		}
		if cancelled, err = scanMessages(rows); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE messages SET status = 'queued' WHERE status = 'sending'`)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("recover messages: %w", err)
	}
	return int(n), cancelled, nil
}

// OutboxCounts counts every organization's pending messages and those sent
// and failed since dayStart.
func (s *Store) OutboxCounts(ctx context.Context, dayStart time.Time) (map[string]state.Outbox, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT org,
		sum(status IN ('queued', 'sending')),
		sum(sent_at >= ?1 AND status IN ('sent', 'delivered', 'read')),
		sum(status = 'failed' AND failed_at >= ?1)
		FROM messages GROUP BY org`, millis(dayStart))
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

// tx runs fn in one transaction.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
