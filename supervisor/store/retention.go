package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/retention"
)

// Contacts are never pruned, on purpose. The table is what the 463 policy
// calls a known contact: a number with a chat, whose messages go on while
// WhatsApp restricts new chats. A chat does not end when its last message
// is a month old, so forgetting the number would hold messages to a
// long-standing customer during a restriction as if it were a stranger,
// the opposite of what the policy is for. It costs one short row per
// distinct number an organization has talked to: it grows with the
// address book, not with the messages.

// PruneMessages looks at the next limit messages after seq after, in one
// transaction, and deletes those that are final and whose last change is
// before cutoff, with their dead letters, and the finished broadcasts of
// which they were the last messages.
//
// A webhook event of a pruned message that is still waiting for delivery
// stays: it is removed when delivered or pruned when dead, so retention
// never breaks at-least-once delivery (retention may be shorter than
// webhook.give_up_after).
//
// The walk follows seq, the primary key, so a batch reads at most limit
// rows however large the table. It stops at a batch queued entirely after
// the cutoff: seq follows acceptance, so nothing older is left beyond it
// (a message's last change is never before its acceptance).
func (s *Store) PruneMessages(ctx context.Context, cutoff time.Time, after int64, limit int) (retention.Batch, error) {
	b := retention.Batch{Next: after}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq, id, status, coalesce(broadcast, ''), queued_at,
			max(queued_at, sent_at, delivered_at, read_at, failed_at)
			FROM messages WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
		if err != nil {
			return err
		}
		var (
			seqs, ids []any
			jobs      = map[string]bool{}
			read      int
			oldest    = int64(-1)
		)
		for rows.Next() {
			var (
				seq, queued, last int64
				id, status, job   string
			)
			if err := rows.Scan(&seq, &id, &status, &job, &queued, &last); err != nil {
				rows.Close()
				return err
			}
			read++
			b.Next = seq
			if oldest < 0 || queued < oldest {
				oldest = queued
			}
			if !finalStatus(status) || last >= millis(cutoff) {
				continue
			}
			seqs, ids = append(seqs, seq), append(ids, id)
			if job != "" {
				jobs[job] = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		b.More = read == limit && oldest < millis(cutoff)
		if len(seqs) == 0 {
			return nil
		}
		if b.Messages, err = execCount(ctx, tx, `DELETE FROM messages WHERE seq IN (`+marks(len(seqs))+`)`, seqs...); err != nil {
			return err
		}
		if b.Events, err = execCount(ctx, tx, `DELETE FROM webhook_events WHERE kind = 'message_status' AND dead_at > 0
			AND json_extract(data, '$.message_id') IN (`+marks(len(ids))+`)`, ids...); err != nil {
			return err
		}
		for job := range jobs {
			n, err := execCount(ctx, tx, `DELETE FROM broadcasts WHERE id = ?1 AND status IN ('done', 'cancelled')
				AND NOT EXISTS (SELECT 1 FROM messages WHERE broadcast = ?1)`, job)
			if err != nil {
				return err
			}
			b.Broadcasts += n
		}
		return nil
	})
	if err != nil {
		return retention.Batch{}, fmt.Errorf("prune messages: %w", err)
	}
	return b, nil
}

// PruneDeadLetters looks at the next limit webhook events after seq after,
// in one transaction, and deletes the dead letters that died before
// cutoff. Like PruneMessages it walks the primary key and stops at a batch
// committed entirely after the cutoff: an event dies after it is committed.
func (s *Store) PruneDeadLetters(ctx context.Context, cutoff time.Time, after int64, limit int) (retention.Batch, error) {
	b := retention.Batch{Next: after}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var read int
		var oldest sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT count(*), min(created_at), coalesce(max(seq), ?1) FROM
			(SELECT seq, created_at FROM webhook_events WHERE seq > ?1 ORDER BY seq LIMIT ?2)`, after, limit).Scan(&read, &oldest, &b.Next); err != nil {
			return err
		}
		b.More = read == limit && oldest.Int64 < millis(cutoff)
		var err error
		b.Events, err = execCount(ctx, tx, `DELETE FROM webhook_events WHERE seq > ? AND seq <= ? AND dead_at > 0 AND dead_at < ?`,
			after, b.Next, millis(cutoff))
		return err
	})
	if err != nil {
		return retention.Batch{}, fmt.Errorf("prune dead letters: %w", err)
	}
	return b, nil
}

func finalStatus(s string) bool {
	switch s {
	case "sent", "delivered", "read", "failed":
		return true
	}
	return false
}

// marks is n comma-separated placeholders.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func execCount(ctx context.Context, tx *sql.Tx, q string, args ...any) (int, error) {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
