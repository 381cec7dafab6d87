package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// AddContact remembers a number that wrote to the organization: a chat
// exists, so the new-chat restriction does not hold messages to it.
func (s *Store) AddContact(ctx context.Context, org, phone string) error {
	return s.exec(ctx, "add contact", `INSERT INTO contacts (org, phone) VALUES (?, ?) ON CONFLICT DO NOTHING`, org, phone)
}

// Restrict holds org's messages to new contacts until until, from at, with
// its send_restricted event.
func (s *Store) Restrict(ctx context.Context, org string, until, at time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO senders (org, restricted_until) VALUES (?, ?)
			ON CONFLICT (org) DO UPDATE SET restricted_until = excluded.restricted_until`, org, millis(until)); err != nil {
			return err
		}
		return s.emit(ctx, tx, webhook.NewEvent(webhook.SendRestricted, org, "restricted", "463", at,
			map[string]string{"until": until.UTC().Format(time.RFC3339)}))
	})
	if err != nil {
		return fmt.Errorf("restrict %s: %w", org, err)
	}
	return nil
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
