package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// numbersPerQuery keeps an IN list well under SQLite's bound on variables.
const numbersPerQuery = 500

// NumberChecks returns the cached answers for phones, whatever their age:
// outbox.Fresh decides which still hold.
func (s *Store) NumberChecks(ctx context.Context, phones []string) (map[string]outbox.NumberCheck, error) {
	out := make(map[string]outbox.NumberCheck, len(phones))
	for start := 0; start < len(phones); start += numbersPerQuery {
		part := phones[start:min(start+numbersPerQuery, len(phones))]
		args := make([]any, len(part))
		for i, p := range part {
			args[i] = p
		}
		rows, err := s.db.QueryContext(ctx, `SELECT phone, on_whatsapp, jid, checked_at FROM number_checks
			WHERE phone IN (?`+strings.Repeat(", ?", len(part)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read number checks: %w", err)
		}
		for rows.Next() {
			var c outbox.NumberCheck
			var at int64
			if err := rows.Scan(&c.Phone, &c.OnWhatsApp, &c.JID, &at); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read number checks: %w", err)
			}
			c.CheckedAt = fromMillis(at)
			out[c.Phone] = c
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read number checks: %w", err)
		}
	}
	return out, nil
}

// SaveNumberChecks caches answers, replacing older ones for the same phones.
func (s *Store) SaveNumberChecks(ctx context.Context, checks []outbox.NumberCheck) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, c := range checks {
			if _, err := tx.ExecContext(ctx, `INSERT INTO number_checks (phone, on_whatsapp, jid, checked_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (phone) DO UPDATE SET on_whatsapp = excluded.on_whatsapp, jid = excluded.jid, checked_at = excluded.checked_at`,
				c.Phone, c.OnWhatsApp, c.JID, millis(c.CheckedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save %d number checks: %w", len(checks), err)
	}
	return nil
}

// UncheckedRecipients returns up to limit recipients of job, in sending
// order, whose messages were never attempted and whose number has no answer
// checked after freshSince.
func (s *Store) UncheckedRecipients(ctx context.Context, job string, freshSince time.Time, limit int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT m.recipient FROM messages m
		WHERE m.broadcast = ? AND m.status = 'queued' AND m.attempts = 0
		AND NOT EXISTS (SELECT 1 FROM number_checks c WHERE c.phone = m.recipient AND c.checked_at > ?)
		ORDER BY m.seq LIMIT ?`, job, millis(freshSince), limit)
	if err != nil {
		return nil, fmt.Errorf("unchecked recipients of %s: %w", job, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("unchecked recipients of %s: %w", job, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
