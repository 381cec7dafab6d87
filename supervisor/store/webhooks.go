package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

type eventOptions struct {
	incoming bool
	notify   func()
}

// EnableEvents makes the store keep webhook events (off by default: with
// no webhook URL nothing would ever take them out). incoming keeps
// message_received too; notify is called after a commit that added events.
// Call it before the store is used.
func (s *Store) EnableEvents(incoming bool, notify func()) {
	s.events = &eventOptions{incoming: incoming, notify: notify}
}

// emit inserts events in tx when events are kept.
func (s *Store) emit(ctx context.Context, tx *sql.Tx, events ...webhook.Event) error {
	if s.events == nil {
		return nil
	}
	for _, e := range events {
		if e.Kind == webhook.MessageReceived && !s.events.incoming {
			continue
		}
		data := string(e.Data)
		if data == "" {
			data = "{}"
		}
		// The event's time is when the supervisor recorded it, on the
		// caller's clock: give_up_after counts from there, and a test's
		// fake clock is not mixed with the wall clock.
		created := e.Created
		if created.IsZero() {
			created = e.At
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_events (id, org, kind, status, reason, at, data, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.ID, e.Org, e.Kind, e.Status, e.Reason, millis(e.At), data, millis(created)); err != nil {
			return fmt.Errorf("add webhook event: %w", err)
		}
		s.emitted.Store(true)
	}
	return nil
}

// AddEvents commits events that no other change carries.
func (s *Store) AddEvents(ctx context.Context, events ...webhook.Event) error {
	if s.events == nil || len(events) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error { return s.emit(ctx, tx, events...) })
}

const eventColumns = `seq, id, org, kind, status, reason, at, data, attempts, next_at, last_error, dead_at, created_at`

func scanEvents(rows *sql.Rows) ([]webhook.Event, error) {
	defer rows.Close()
	var out []webhook.Event
	for rows.Next() {
		var e webhook.Event
		var at, next, dead, created int64
		var data string
		if err := rows.Scan(&e.Seq, &e.ID, &e.Org, &e.Kind, &e.Status, &e.Reason, &at, &data, &e.Attempts, &next, &e.LastError, &dead, &created); err != nil {
			return nil, err
		}
		e.At, e.NextAt, e.DeadAt, e.Created, e.Data = fromMillis(at), fromMillis(next), fromMillis(dead), fromMillis(created), []byte(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

// EventHeads returns each organization's oldest event that is not dead,
// in the order of the organizations' IDs, in one query: a dispatcher round
// with 1,000 organizations is one statement on the one connection that
// every commit needs, not 1,000. The recursive part still seeks the index
// once per organization rather than scanning the table: a receiver that is
// down for a day leaves a backlog of millions of events.
func (s *Store) EventHeads(ctx context.Context) ([]webhook.Event, error) {
	rows, err := s.db.QueryContext(ctx, `WITH RECURSIVE orgs(o) AS (
			SELECT (SELECT org FROM webhook_events WHERE dead_at = 0 ORDER BY org LIMIT 1)
			UNION ALL
			SELECT (SELECT org FROM webhook_events WHERE org > orgs.o AND dead_at = 0 ORDER BY org LIMIT 1)
			FROM orgs WHERE orgs.o IS NOT NULL
		)
		SELECT `+eventColumns+` FROM orgs JOIN webhook_events
		ON seq = (SELECT h.seq FROM webhook_events h WHERE h.org = orgs.o AND h.dead_at = 0 ORDER BY h.seq LIMIT 1)
		WHERE orgs.o IS NOT NULL ORDER BY orgs.o`)
	if err != nil {
		return nil, fmt.Errorf("webhook heads: %w", err)
	}
	heads, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("webhook heads: %w", err)
	}
	return heads, nil
}

// EventDelivered forgets a delivered event.
func (s *Store) EventDelivered(ctx context.Context, seq int64) error {
	return s.exec(ctx, "webhook delivered", `DELETE FROM webhook_events WHERE seq = ?`, seq)
}

// EventFailed records a failed attempt and when to try again.
func (s *Store) EventFailed(ctx context.Context, seq int64, attempts int, next time.Time, lastErr string) error {
	return s.exec(ctx, "webhook failed", `UPDATE webhook_events SET attempts = ?, next_at = ?, last_error = ? WHERE seq = ?`,
		attempts, millis(next), lastErr, seq)
}

// EventDead makes an event a dead letter.
func (s *Store) EventDead(ctx context.Context, seq int64, attempts int, at time.Time, lastErr string) error {
	return s.exec(ctx, "webhook dead", `UPDATE webhook_events SET attempts = ?, dead_at = ?, last_error = ? WHERE seq = ?`,
		attempts, millis(at), lastErr, seq)
}

// DeadEvents lists the dead letters, newest first.
func (s *Store) DeadEvents(ctx context.Context, limit int) ([]webhook.Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM webhook_events WHERE dead_at > 0 ORDER BY seq DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("dead webhooks: %w", err)
	}
	return scanEvents(rows)
}

// RetryDeadEvent makes a dead letter deliverable now. Its sequence number
// is older than its organization's waiting events, so it goes first.
func (s *Store) RetryDeadEvent(ctx context.Context, id string, now time.Time) (webhook.Event, error) {
	var out []webhook.Event
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE webhook_events SET dead_at = 0, attempts = 0, next_at = ?
			WHERE id = ? AND dead_at > 0 RETURNING `+eventColumns, millis(now), id)
		if err != nil {
			return err
		}
		out, err = scanEvents(rows)
		return err
	})
	if err != nil {
		return webhook.Event{}, fmt.Errorf("retry webhook %s: %w", id, err)
	}
	if len(out) == 0 {
		return webhook.Event{}, webhook.ErrNotFound
	}
	return out[0], nil
}

// EventCounts counts the events waiting for delivery and the dead letters
// from the counts that triggers keep in the transactions that change them:
// counting a backlog of millions every few seconds would hold the one
// connection for as long as the scan takes.
func (s *Store) EventCounts(ctx context.Context) (waiting, dead int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT waiting, dead FROM webhook_counts WHERE id = 1`).Scan(&waiting, &dead)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("webhook counts: %w", err)
	}
	return waiting, dead, nil
}
