package store

import (
	"context"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// SentSince returns every organization's sent messages per quarter hour
// from since on (the table keeps two days).
func (s *Store) SentSince(ctx context.Context, since time.Time) (map[string][]outbox.SentCount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT org, quarter, n FROM sent_quarters WHERE quarter >= ? ORDER BY org, quarter`, millis(since))
	if err != nil {
		return nil, fmt.Errorf("load sent counts: %w", err)
	}
	defer rows.Close()
	out := map[string][]outbox.SentCount{}
	for rows.Next() {
		var org string
		var quarter int64
		var n int
		if err := rows.Scan(&org, &quarter, &n); err != nil {
			return nil, fmt.Errorf("load sent counts: %w", err)
		}
		out[org] = append(out[org], outbox.SentCount{At: fromMillis(quarter), N: n})
	}
	return out, rows.Err()
}

// LinkNumber records that org is linked to phone at at and returns when
// that number first linked to org on this host.
func (s *Store) LinkNumber(ctx context.Context, org, phone string, at time.Time) (time.Time, error) {
	var first int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO linked_numbers (org, phone, first_linked_at, last_linked_at) VALUES (?1, ?2, ?3, ?3)
		ON CONFLICT (org, phone) DO UPDATE SET last_linked_at = max(last_linked_at, excluded.last_linked_at)
		RETURNING first_linked_at`, org, phone, millis(at)).Scan(&first)
	if err != nil {
		return time.Time{}, fmt.Errorf("link number of %s: %w", org, err)
	}
	return fromMillis(first), nil
}

// LinkedNumbers returns when each organization's current number (the one
// linked last) first linked.
func (s *Store) LinkedNumbers(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT org, first_linked_at FROM linked_numbers AS l
		WHERE last_linked_at = (SELECT max(last_linked_at) FROM linked_numbers WHERE org = l.org)`)
	if err != nil {
		return nil, fmt.Errorf("load linked numbers: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var org string
		var first int64
		if err := rows.Scan(&org, &first); err != nil {
			return nil, fmt.Errorf("load linked numbers: %w", err)
		}
		out[org] = fromMillis(first)
	}
	return out, rows.Err()
}
