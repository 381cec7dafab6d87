package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/badmac"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

// legacyRecord is one organization in the registry.json of earlier versions.
type legacyRecord struct {
	ID             string         `json:"id"`
	Wanted         bool           `json:"wanted"`
	Status         state.Status   `json:"status"`
	StatusReason   string         `json:"status_reason"`
	ArchivePending string         `json:"archive_pending"`
	Linked         bool           `json:"linked"`
	JID            string         `json:"jid"`
	CooldownUntil  *time.Time     `json:"cooldown_until"`
	CooldownReason string         `json:"cooldown_reason"`
	BanUntil       *time.Time     `json:"ban_until"`
	BadMAC         badmac.Counter `json:"bad_mac"`
	FromConfig     bool           `json:"from_config"`
	AddedAt        time.Time      `json:"added_at"`
}

const importedKey = "registry_imported"

// ImportRegistry imports the registry.json of an earlier version once: in
// the same transaction that marks it imported, so a crash before the file is
// renamed aside never imports it twice over newer state. Organizations
// already in the database are kept as they are. It returns how many records
// were imported and where the file was moved; a missing file is not an error.
func (s *Store) ImportRegistry(ctx context.Context, path string, now time.Time) (int, string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("import %s: %w", path, err)
	}
	var file struct {
		Orgs []legacyRecord `json:"orgs"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		return 0, "", fmt.Errorf("import %s: not valid JSON (fix it or move it aside): %w", path, err)
	}
	recs := make([]lifecycle.Record, 0, len(file.Orgs))
	for _, l := range file.Orgs {
		// IDs become paths; a hand-edited file must not smuggle one in.
		if err := orgid.Validate(l.ID); err != nil {
			return 0, "", fmt.Errorf("import %s: %w", path, err)
		}
		recs = append(recs, l.record())
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, "", fmt.Errorf("import %s: %w", path, err)
	}
	defer tx.Rollback()
	var done string
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, importedKey).Scan(&done)
	n := 0
	switch {
	case err == nil:
		// Imported before; only the rename was left undone.
	case isNoRows(err):
		for _, r := range recs {
			if err := saveOrg(ctx, tx, r, true, now); err != nil {
				return 0, "", fmt.Errorf("import %s: organization %s: %w", path, r.ID, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, importedKey, now.UTC().Format(time.RFC3339)); err != nil {
			return 0, "", fmt.Errorf("import %s: %w", path, err)
		}
		n = len(recs)
	default:
		return 0, "", fmt.Errorf("import %s: %w", path, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, "", fmt.Errorf("import %s: %w", path, err)
	}
	aside := path + ".imported-" + strconv.FormatInt(now.UnixMilli(), 10)
	if err := os.Rename(path, aside); err != nil {
		return n, "", fmt.Errorf("import %s: imported, but moving it aside failed: %w", path, err)
	}
	return n, aside, nil
}

// record maps the old fields onto the lifecycle's: Wanted and the sticky
// status become Run and the idle status, the cooldown and the ban one hold.
func (l legacyRecord) record() lifecycle.Record {
	r := lifecycle.Record{
		ID: l.ID, Reason: l.StatusReason, Linked: l.Linked, JID: l.JID, BadMAC: l.BadMAC,
		ArchivePending: l.ArchivePending, FromConfig: l.FromConfig, AddedAt: l.AddedAt,
	}
	if l.CooldownUntil != nil {
		r.Hold = lifecycle.Hold{Until: *l.CooldownUntil, Reason: l.CooldownReason}
	}
	switch {
	case l.ArchivePending == lifecycle.ArchiveDeleted:
		r.Deleted, r.Status = true, state.Stopped
	case l.Status == state.Banned && l.BanUntil != nil:
		r.Run, r.Status = true, state.Banned
		if l.BanUntil.After(r.Hold.Until) {
			r.Hold = lifecycle.Hold{Until: *l.BanUntil, Reason: lifecycle.HoldBan}
		}
	case l.Status != "":
		r.Status = l.Status
	case l.Wanted:
		r.Run, r.Status = true, state.Queued
	default:
		r.Status = state.Stopped
	}
	return r
}
