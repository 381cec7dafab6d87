package store

import (
	"context"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

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
