package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

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
		var status string
		err := tx.QueryRowContext(ctx, `UPDATE messages SET sent_at = ?,
			status = CASE WHEN status = 'sending' THEN 'sent' ELSE status END
			WHERE id = ? AND (status = 'sending' OR (status IN ('delivered', 'read') AND sent_at = 0))
			RETURNING status`, millis(at), m.ID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		n = 1
		if status == string(outbox.Sent) {
			if err := s.emit(ctx, tx, messageEvent(m, outbox.Sent, "", at)); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (org, phone) VALUES (?, ?) ON CONFLICT DO NOTHING`, m.Org, m.To); err != nil {
			return err
		}
		if err := lastSent(ctx, tx, m.Org, at); err != nil {
			return err
		}
		return s.progress(ctx, tx, m.Broadcast, at)
	})
	if err != nil {
		return false, fmt.Errorf("mark sent %s: %w", m.ID, err)
	}
	return n == 1, nil
}

// Requeue puts a message whose send had no known outcome back in line,
// not before notBefore (a 463 holds the refused message itself for
// restrict_backoff). outbox.RequeueOutcome decides when it fails instead:
// its organization was deleted meanwhile, or its broadcast cancelled. It
// returns the message as it is now; a message that left sending another
// way (a receipt overtook the lost answer) is returned unchanged.
func (s *Store) Requeue(ctx context.Context, m outbox.Message, at, notBefore time.Time) (outbox.Message, error) {
	var out outbox.Message
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var registered, cancelled bool
		err := tx.QueryRowContext(ctx, `SELECT
			EXISTS (SELECT 1 FROM orgs WHERE id = m.org AND deleted = 0),
			EXISTS (SELECT 1 FROM broadcasts WHERE id = m.broadcast AND status = 'cancelled')
			FROM messages m WHERE m.id = ?`, m.ID).Scan(&registered, &cancelled)
		if isNoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		status, reason := outbox.RequeueOutcome(registered, cancelled)
		res, err := tx.ExecContext(ctx, `UPDATE messages SET status = ?1,
			reason = CASE WHEN ?1 = 'failed' THEN ?2 ELSE reason END,
			failed_at = CASE WHEN ?1 = 'failed' THEN ?3 ELSE failed_at END,
			not_before = ?4
			WHERE id = ?5 AND status = 'sending'`, string(status), reason, millis(at), millis(notBefore), m.ID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		out, err = scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, m.ID))
		if err != nil || n == 0 || status != outbox.Failed {
			return err
		}
		if err := s.emit(ctx, tx, messageEvent(out, outbox.Failed, reason, at)); err != nil {
			return err
		}
		return s.progress(ctx, tx, out.Broadcast, at)
	})
	if err != nil {
		return m, fmt.Errorf("requeue %s: %w", m.ID, err)
	}
	return out, nil
}

// Fail gives a pending message up. It returns the message as it is now and
// whether this call failed it: one that left pending another way (a
// receipt showed it arrived, it expired) is not failed again, and its
// caller must not count it as failed a second time.
func (s *Store) Fail(ctx context.Context, m outbox.Message, reason string, at time.Time) (outbox.Message, bool, error) {
	var (
		out     outbox.Message
		changed bool
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET status = 'failed', reason = ?, failed_at = ?
			WHERE id = ? AND status IN ('queued', 'sending')`, reason, millis(at), m.ID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if changed = n == 1; changed {
			if err := s.emit(ctx, tx, messageEvent(m, outbox.Failed, reason, at)); err != nil {
				return err
			}
			if err := s.progress(ctx, tx, m.Broadcast, at); err != nil {
				return err
			}
		}
		out, err = scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, m.ID))
		return err
	})
	if err != nil {
		return m, false, fmt.Errorf("fail %s: %w", m.ID, err)
	}
	return out, changed, nil
}

// progress notes that a message of job reached its end, and finishes the
// job when outbox.JobFinished says so: in the message's own transaction,
// so that no crash can leave a job open with nothing left to send.
//
// It also reports the job's progress to the webhook when
// outbox.ProgressEventDue allows another event.
func (s *Store) progress(ctx context.Context, tx *sql.Tx, job string, at time.Time) error {
	if job == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET progress_at = ? WHERE id = ?`, millis(at), job); err != nil {
		return err
	}
	done, err := s.finishDrained(ctx, tx, job, at)
	if err != nil || done || s.events == nil {
		return err
	}
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT progress_event_at FROM broadcasts WHERE id = ?`, job).Scan(&last); err != nil {
		if isNoRows(err) {
			return nil
		}
		return err
	}
	if !outbox.ProgressEventDue(fromMillis(last), at) {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET progress_event_at = ? WHERE id = ?`, millis(at), job); err != nil {
		return err
	}
	e, err := jobEvent(ctx, tx, webhook.BroadcastProgress, job, at)
	if err != nil {
		return err
	}
	return s.emit(ctx, tx, e)
}

// finishDrained marks job done when outbox.JobFinished says so, with its
// broadcast_done event; it reports whether it did.
func (s *Store) finishDrained(ctx context.Context, tx *sql.Tx, job string, at time.Time) (bool, error) {
	var (
		status  string
		pending bool
	)
	err := tx.QueryRowContext(ctx, `SELECT status,
		EXISTS (SELECT 1 FROM messages WHERE broadcast = ?1 AND status IN ('queued', 'sending'))
		FROM broadcasts WHERE id = ?1`, job).Scan(&status, &pending)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !outbox.JobFinished(outbox.JobStatus(status), pending) {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET status = 'done', finished_at = ? WHERE id = ?`, millis(at), job); err != nil {
		return false, err
	}
	if s.events == nil {
		return true, nil
	}
	e, err := jobEvent(ctx, tx, webhook.BroadcastDone, job, at)
	if err != nil {
		return true, err
	}
	return true, s.emit(ctx, tx, e)
}

// Receipt moves org's messages with these WhatsApp IDs forward to status
// (delivered or read), never back; it returns the messages it changed. at
// is WhatsApp's time, kept as the message's delivered_at or read_at and in
// the event's data; now, when the supervisor recorded the receipt, is the
// event's timestamp.
func (s *Store) Receipt(ctx context.Context, org string, waIDs []string, status outbox.Status, at, now time.Time) ([]outbox.Message, error) {
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
			if err := s.emit(ctx, tx, receiptEvent(m, status, at, now)); err != nil {
				return err
			}
			if m.Broadcast != "" {
				if _, err := s.finishDrained(ctx, tx, m.Broadcast, now); err != nil {
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
			if err := s.emit(ctx, tx, messageEvent(m, outbox.Failed, m.Reason, now)); err != nil {
				return err
			}
			if err := s.progress(ctx, tx, m.Broadcast, now); err != nil {
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

// failDeleted fails org's queued messages and cancels its open jobs as its
// tombstone is committed, in the same transaction: no crash can leave a
// deleted organization's message queued for a later registration of the
// same ID to send. A message being sent is left to its answer (the worker
// may have delivered it): an ack records it sent, anything else fails it
// as org_deleted (outbox.RequeueOutcome), and a crash meanwhile too
// (RecoverSending).
func (s *Store) failDeleted(ctx context.Context, tx *sql.Tx, org string, at time.Time) error {
	rows, err := tx.QueryContext(ctx, `UPDATE messages SET status = 'failed', reason = ?, failed_at = ?
		WHERE org = ? AND status = 'queued' RETURNING `+messageColumns, outbox.ReasonOrgDeleted, millis(at), org)
	if err != nil {
		return err
	}
	failed, err := scanMessages(rows)
	if err != nil {
		return err
	}
	for _, m := range failed {
		if err := s.emit(ctx, tx, messageEvent(m, outbox.Failed, m.Reason, at)); err != nil {
			return err
		}
	}
	jobs, err := tx.QueryContext(ctx, `UPDATE broadcasts SET status = 'cancelled', finished_at = ?
		WHERE org = ? AND status IN ('queued', 'sending', 'stalled') RETURNING id`, millis(at), org)
	if err != nil {
		return err
	}
	var ids []string
	for jobs.Next() {
		var id string
		if err := jobs.Scan(&id); err != nil {
			jobs.Close()
			return err
		}
		ids = append(ids, id)
	}
	jobs.Close()
	if err := jobs.Err(); err != nil || s.events == nil {
		return err
	}
	for _, id := range ids {
		e, err := jobEvent(ctx, tx, webhook.BroadcastDone, id, at)
		if err != nil {
			return err
		}
		if err := s.emit(ctx, tx, e); err != nil {
			return err
		}
	}
	return nil
}

// RecoverSending puts back in line the messages a crash left sending: they
// may have reached WhatsApp, and go again with the same ID. Those of a
// cancelled broadcast fail with reason cancelled instead, and the pending
// ones of an organization that is no longer registered (deleted while
// they were sent, or by a version that failed them in a second
// transaction) with reason org_deleted; the failed ones are returned.
func (s *Store) RecoverSending(ctx context.Context, at time.Time) (int, []outbox.Message, error) {
	var n int64
	var failed []outbox.Message
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []struct{ reason, where string }{
			{outbox.ReasonOrgDeleted, `status IN ('queued', 'sending') AND org NOT IN (SELECT id FROM orgs WHERE deleted = 0)`},
			{"cancelled", `status = 'sending' AND broadcast IN (SELECT id FROM broadcasts WHERE status = 'cancelled')`},
		} {
			rows, err := tx.QueryContext(ctx, `UPDATE messages SET status = 'failed', reason = ?, failed_at = ?
				WHERE `+q.where+` RETURNING `+messageColumns, q.reason, millis(at))
			if err != nil {
				return err
			}
			got, err := scanMessages(rows)
			if err != nil {
				return err
			}
			for _, m := range got {
				if err := s.emit(ctx, tx, messageEvent(m, outbox.Failed, m.Reason, at)); err != nil {
					return err
				}
			}
			failed = append(failed, got...)
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
	return int(n), failed, nil
}

// messageEvent is a message_status event: the message reached status.
func messageEvent(m outbox.Message, status outbox.Status, reason string, at time.Time) webhook.Event {
	return webhook.NewEvent(webhook.MessageStatus, m.Org, string(status), reason, at, map[string]string{
		"message_id": m.ID, "wa_message_id": m.WAID, "to": m.To, "broadcast_id": m.Broadcast,
	})
}

// receiptEvent is a message_status event for a receipt: its timestamp is
// now, when the supervisor recorded it, and WhatsApp's time (whole seconds
// from the recipient's phone, which a receiver sorting by timestamp put
// before the sent event) goes in data as wa_timestamp.
func receiptEvent(m outbox.Message, status outbox.Status, at, now time.Time) webhook.Event {
	return webhook.NewEvent(webhook.MessageStatus, m.Org, string(status), "", now, map[string]string{
		"message_id": m.ID, "wa_message_id": m.WAID, "to": m.To, "broadcast_id": m.Broadcast,
		"wa_timestamp": at.UTC().Format(webhook.TimestampFormat),
	})
}

// jobEvent is a broadcast event with the job's counts.
func jobEvent(ctx context.Context, tx *sql.Tx, kind, job string, at time.Time) (webhook.Event, error) {
	var org, status string
	var total int
	if err := tx.QueryRowContext(ctx, `SELECT org, status, total FROM broadcasts WHERE id = ?`, job).Scan(&org, &status, &total); err != nil {
		return webhook.Event{}, err
	}
	c, err := jobCounts(ctx, tx, job)
	if err != nil {
		return webhook.Event{}, err
	}
	return webhook.NewEvent(kind, org, status, "", at, map[string]any{
		"broadcast_id": job, "total": total, "pending": c.Pending, "sent": c.Sent, "failed": c.Failed,
	}), nil
}
