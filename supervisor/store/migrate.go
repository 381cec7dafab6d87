package store

import (
	"context"
	"fmt"
)

// migrations are applied in order, each in its own transaction; the
// database's user_version is the number of the last one applied. Never edit
// a migration that has shipped: add a new one.
var migrations = []string{
	1: `
CREATE TABLE orgs (
	id              TEXT PRIMARY KEY,
	status          TEXT    NOT NULL,
	reason          TEXT    NOT NULL DEFAULT '',
	run             INTEGER NOT NULL DEFAULT 0,
	linked          INTEGER NOT NULL DEFAULT 0,
	jid             TEXT    NOT NULL DEFAULT '',
	hold_until      INTEGER NOT NULL DEFAULT 0, -- unix ms, 0 = none
	hold_reason     TEXT    NOT NULL DEFAULT '',
	badmac          TEXT    NOT NULL DEFAULT '{}', -- JSON of badmac.Counter
	crashes         INTEGER NOT NULL DEFAULT 0,
	archive_pending TEXT    NOT NULL DEFAULT '',
	deleted         INTEGER NOT NULL DEFAULT 0, -- a tombstone keeping its holds
	fingerprint     TEXT    NOT NULL DEFAULT '',
	from_config     INTEGER NOT NULL DEFAULT 0,
	added_at        INTEGER NOT NULL DEFAULT 0,
	updated_at      INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
`,
	2: `
CREATE TABLE messages (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT, -- acceptance order: sending and paging follow it
	id              TEXT    NOT NULL UNIQUE,
	org             TEXT    NOT NULL,
	recipient       TEXT    NOT NULL,
	text            TEXT    NOT NULL,
	wa_id           TEXT    NOT NULL, -- fixed at acceptance, reused by every resend
	status          TEXT    NOT NULL,
	reason          TEXT    NOT NULL DEFAULT '',
	idempotency_key TEXT,
	broadcast       TEXT,
	queued_at       INTEGER NOT NULL,
	sending_at      INTEGER NOT NULL DEFAULT 0,
	sent_at         INTEGER NOT NULL DEFAULT 0,
	delivered_at    INTEGER NOT NULL DEFAULT 0,
	read_at         INTEGER NOT NULL DEFAULT 0,
	failed_at       INTEGER NOT NULL DEFAULT 0,
	attempts        INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE UNIQUE INDEX messages_idempotency ON messages (org, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_next ON messages (org, status, broadcast, seq);
CREATE INDEX messages_list ON messages (org, seq);
CREATE INDEX messages_wa ON messages (org, wa_id);
CREATE INDEX messages_job ON messages (broadcast, status, seq) WHERE broadcast IS NOT NULL;
CREATE TABLE broadcasts (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	id              TEXT    NOT NULL UNIQUE,
	org             TEXT    NOT NULL,
	text            TEXT    NOT NULL,
	status          TEXT    NOT NULL,
	idempotency_key TEXT,
	total           INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	started_at      INTEGER NOT NULL DEFAULT 0,
	finished_at     INTEGER NOT NULL DEFAULT 0,
	progress_at     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE UNIQUE INDEX broadcasts_idempotency ON broadcasts (org, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX broadcasts_org ON broadcasts (org, seq);
-- Recipients the organization has messaged or heard from: WhatsApp's
-- new-chat restriction (463) holds only the others.
CREATE TABLE contacts (
	org   TEXT NOT NULL,
	phone TEXT NOT NULL,
	PRIMARY KEY (org, phone)
) STRICT, WITHOUT ROWID;
CREATE TABLE senders (
	org              TEXT PRIMARY KEY,
	restricted_until INTEGER NOT NULL DEFAULT 0,
	last_sent_at     INTEGER NOT NULL DEFAULT 0
) STRICT;
`,
	3: `
-- Webhook events, committed in the transaction of what they report and
-- deleted once delivered; a dead letter (dead_at set) stays until retried.
CREATE TABLE webhook_events (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT, -- delivery order within an organization
	id         TEXT    NOT NULL UNIQUE,
	org        TEXT    NOT NULL,
	kind       TEXT    NOT NULL,
	status     TEXT    NOT NULL DEFAULT '',
	reason     TEXT    NOT NULL DEFAULT '',
	at         INTEGER NOT NULL,
	data       TEXT    NOT NULL DEFAULT '{}',
	attempts   INTEGER NOT NULL DEFAULT 0,
	next_at    INTEGER NOT NULL DEFAULT 0,
	last_error TEXT    NOT NULL DEFAULT '',
	dead_at    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX webhook_events_org ON webhook_events (org, dead_at, seq);
-- broadcast_progress goes out at most once per 10 s per job.
ALTER TABLE broadcasts ADD COLUMN progress_event_at INTEGER NOT NULL DEFAULT 0;
`,
	4: `
-- The organization's proxy URL, credentials included (state.db is 0600).
ALTER TABLE orgs ADD COLUMN proxy TEXT NOT NULL DEFAULT '';
`,
	5: `
-- When the event was committed: give_up_after counts from here, not from
-- the time it reports (a receipt from a phone that was offline for a day).
ALTER TABLE webhook_events ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
`,
	6: `
-- A broadcast's counts by outcome, kept by triggers in the transaction of
-- every change to one of its messages, whichever statement makes it:
-- listing 10 jobs of 10,000 messages read 100,000 rows to count them, and
-- a finished job keeps its counts after retention prunes its oldest
-- messages.
ALTER TABLE broadcasts ADD COLUMN pending_count INTEGER NOT NULL DEFAULT 0; -- queued or sending
ALTER TABLE broadcasts ADD COLUMN sent_count    INTEGER NOT NULL DEFAULT 0; -- sent, delivered or read
ALTER TABLE broadcasts ADD COLUMN failed_count  INTEGER NOT NULL DEFAULT 0;
UPDATE broadcasts SET
	pending_count = (SELECT count(*) FROM messages WHERE broadcast = broadcasts.id AND status IN ('queued', 'sending')),
	sent_count    = (SELECT count(*) FROM messages WHERE broadcast = broadcasts.id AND status IN ('sent', 'delivered', 'read')),
	failed_count  = (SELECT count(*) FROM messages WHERE broadcast = broadcasts.id AND status = 'failed');
CREATE TRIGGER broadcast_counts_insert AFTER INSERT ON messages WHEN NEW.broadcast IS NOT NULL
BEGIN
	UPDATE broadcasts SET
		pending_count = pending_count + (NEW.status IN ('queued', 'sending')),
		sent_count    = sent_count    + (NEW.status IN ('sent', 'delivered', 'read')),
		failed_count  = failed_count  + (NEW.status = 'failed')
	WHERE id = NEW.broadcast;
END;
CREATE TRIGGER broadcast_counts_update AFTER UPDATE OF status ON messages
	WHEN NEW.broadcast IS NOT NULL AND OLD.status <> NEW.status
BEGIN
	UPDATE broadcasts SET
		pending_count = pending_count + (NEW.status IN ('queued', 'sending'))          - (OLD.status IN ('queued', 'sending')),
		sent_count    = sent_count    + (NEW.status IN ('sent', 'delivered', 'read')) - (OLD.status IN ('sent', 'delivered', 'read')),
		failed_count  = failed_count  + (NEW.status = 'failed')                       - (OLD.status = 'failed')
	WHERE id = NEW.broadcast;
END;
-- Retention deletes a pruned message's dead letters with it: found by
-- this index rather than by reading every dead letter.
CREATE INDEX webhook_events_message ON webhook_events (json_extract(data, '$.message_id')) WHERE kind = 'message_status';
`,
	7: `
-- The webhook queue's gauges, kept by triggers in the transactions that
-- change the queue: counting a backlog of millions every few seconds would
-- scan the whole table on the one connection every commit needs.
CREATE TABLE webhook_counts (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	waiting INTEGER NOT NULL,
	dead    INTEGER NOT NULL
) STRICT;
INSERT INTO webhook_counts (id, waiting, dead)
	SELECT 1, coalesce(sum(dead_at = 0), 0), coalesce(sum(dead_at > 0), 0) FROM webhook_events;
CREATE TRIGGER webhook_counts_insert AFTER INSERT ON webhook_events BEGIN
	UPDATE webhook_counts SET waiting = waiting + (NEW.dead_at = 0), dead = dead + (NEW.dead_at > 0) WHERE id = 1;
END;
CREATE TRIGGER webhook_counts_delete AFTER DELETE ON webhook_events BEGIN
	UPDATE webhook_counts SET waiting = waiting - (OLD.dead_at = 0), dead = dead - (OLD.dead_at > 0) WHERE id = 1;
END;
CREATE TRIGGER webhook_counts_dead AFTER UPDATE OF dead_at ON webhook_events
	WHEN (OLD.dead_at = 0) != (NEW.dead_at = 0) BEGIN
	UPDATE webhook_counts SET waiting = waiting + (NEW.dead_at = 0) - (OLD.dead_at = 0),
		dead = dead + (NEW.dead_at > 0) - (OLD.dead_at > 0) WHERE id = 1;
END;
`,
	8: `
-- A message WhatsApp refused with 463 waits restrict_backoff itself, even
-- to a known contact: resent at the pacing rate it would hold every later
-- message back and hammer the restriction (unix ms, 0 = may go).
ALTER TABLE messages ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;
-- A broadcast's idempotency key matches a retry only with the same
-- recipients: the hash of its normalised list ('' on jobs from before it,
-- whose hash is taken from their messages when first needed).
ALTER TABLE broadcasts ADD COLUMN recipients_hash TEXT NOT NULL DEFAULT '';
`,
	9: `
-- messages.daily_limit counts each message once, on the day it was first
-- sent, per UTC quarter hour (every zone's midnight falls on one, so any
-- organization's local day is a sum of them, whatever its timezone). The
-- trigger counts in the transaction that sets sent_at, and retention can
-- prune the messages without changing today's count. Two days are kept.
CREATE TABLE sent_quarters (
	org     TEXT NOT NULL,
	quarter INTEGER NOT NULL,
	n       INTEGER NOT NULL,
	PRIMARY KEY (org, quarter)
) STRICT, WITHOUT ROWID;
INSERT INTO sent_quarters (org, quarter, n)
	SELECT org, sent_at - sent_at % 900000, count(*) FROM messages
	WHERE sent_at > CAST(unixepoch('now', '-2 days') AS INTEGER) * 1000 GROUP BY 1, 2;
CREATE TRIGGER sent_quarters_count AFTER UPDATE OF sent_at ON messages
	WHEN OLD.sent_at = 0 AND NEW.sent_at > 0 BEGIN
	INSERT INTO sent_quarters (org, quarter, n) VALUES (NEW.org, NEW.sent_at - NEW.sent_at % 900000, 1)
		ON CONFLICT (org, quarter) DO UPDATE SET n = n + 1;
	DELETE FROM sent_quarters WHERE org = NEW.org AND quarter < NEW.sent_at - 172800000;
END;
-- The warm-up counts from the day a number first linked on this host: a
-- relink of the same number (after a Bad MAC trip) keeps its first day.
-- last_linked_at tells which of an organization's numbers is its current one.
CREATE TABLE linked_numbers (
	org             TEXT NOT NULL,
	phone           TEXT NOT NULL,
	first_linked_at INTEGER NOT NULL,
	last_linked_at  INTEGER NOT NULL,
	PRIMARY KEY (org, phone)
) STRICT;
-- A number linked before this table existed has been sending already: it
-- counts as linked long ago (1 ms after the epoch; 0 would read as "links
-- now"), so an upgrade does not put an established number back on its
-- first warm-up day. The phone is the JID's user without device or agent.
WITH u AS (SELECT id, substr(jid, 1, instr(jid, '@') - 1) AS user FROM orgs WHERE instr(jid, '@') > 1),
	d AS (SELECT id, CASE WHEN instr(user, ':') > 0 THEN substr(user, 1, instr(user, ':') - 1) ELSE user END AS user FROM u),
	p AS (SELECT id, CASE WHEN instr(user, '.') > 0 THEN substr(user, 1, instr(user, '.') - 1) ELSE user END AS phone FROM d)
INSERT INTO linked_numbers (org, phone, first_linked_at, last_linked_at)
	SELECT id, phone, 1, 1 FROM p WHERE phone != '';
`,
	10: `
-- Uploaded files, stored once by content in state_dir/media/<hex>; a
-- message or broadcast names one by id ('' = a text message, whose text
-- is otherwise the file's caption). Retention counts from the last upload
-- of the same bytes, and spares a file while a pending message names it.
CREATE TABLE media (
	id        TEXT PRIMARY KEY, -- "sha256:<hex>" of the bytes
	mime      TEXT    NOT NULL,
	filename  TEXT    NOT NULL,
	size      INTEGER NOT NULL,
	stored_at INTEGER NOT NULL  -- unix ms
) STRICT;
ALTER TABLE messages ADD COLUMN media TEXT NOT NULL DEFAULT '';
ALTER TABLE broadcasts ADD COLUMN media TEXT NOT NULL DEFAULT '';
CREATE INDEX messages_media ON messages (media, status) WHERE media != '';
`,
	11: `
-- WhatsApp's answers to "is this number on WhatsApp" (IsOnWhatsApp), for
-- every organization: trusted for messages.check_ttl after checked_at
-- (unix ms), so that a number is asked about once, not before every send.
CREATE TABLE number_checks (
	phone       TEXT    PRIMARY KEY, -- E.164 digits
	on_whatsapp INTEGER NOT NULL,
	jid         TEXT    NOT NULL DEFAULT '',
	checked_at  INTEGER NOT NULL
) STRICT;
`,
	12: `
-- The worker's last failure (the status object's last_error), committed
-- with the status it explains.
ALTER TABLE orgs ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
`,
}

func (s *Store) migrate(ctx context.Context) error {
	var have int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&have); err != nil {
		return fmt.Errorf("state store %s: read schema version: %w", s.path, err)
	}
	want := len(migrations) - 1
	if have > want {
		return fmt.Errorf("state store %s has schema version %d, newer than this supervisor's %d: run the newer wa-supervisor, or restore a backup", s.path, have, want)
	}
	for v := have + 1; v <= want; v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("state store %s: migration %d: %w", s.path, v, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("state store %s: migration %d: %w", s.path, v, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v)); err != nil {
			tx.Rollback()
			return fmt.Errorf("state store %s: migration %d: %w", s.path, v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("state store %s: migration %d: %w", s.path, v, err)
		}
	}
	return nil
}
