// Package registry is the supervisor's durable list of organizations: what
// should run, the sticky status that must survive a restart (a logged-out
// organization must not come back by itself), cooldowns and Bad MAC history.
// Every change is written with statefile before it is acknowledged, so a
// supervisor restart restores exactly what the API last confirmed.
package registry

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/badmac"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statefile"
)

// Record is what the supervisor remembers about one organization.
type Record struct {
	ID     string `json:"id"`
	Wanted bool   `json:"wanted"` // should be running (false after stop/delete/logout)
	// Status is the last sticky status: logged_out, replaced, banned, failed,
	// stopped ("" otherwise).
	Status state.Status `json:"status"`
	// StatusReason says why the sticky status was entered (qr_timeout,
	// operator, device_removed, ...), so it survives a restart.
	StatusReason string `json:"status_reason,omitempty"`
	// ArchivePending names the archive reason of an auth directory that
	// must be moved aside before any worker may start again; set before the
	// worker is closed, cleared once the directory is archived, so a crash
	// in between is finished at the next boot.
	ArchivePending string         `json:"archive_pending,omitempty"`
	Linked         bool           `json:"linked"` // the auth store held a device last time we knew
	JID            string         `json:"jid,omitempty"`
	CooldownUntil  *time.Time     `json:"cooldown_until,omitempty"`
	CooldownReason string         `json:"cooldown_reason,omitempty"`
	BanUntil       *time.Time     `json:"ban_until,omitempty"`
	BadMAC         badmac.Counter `json:"bad_mac"`
	FromConfig     bool           `json:"from_config"`
	AddedAt        time.Time      `json:"added_at"`
}

// file is the on-disk shape: an object rather than a bare list, so fields
// can be added next to the records later.
type file struct {
	Orgs []Record `json:"orgs"`
}

// Registry holds the records in memory and on disk. It is not goroutine-safe:
// the fleet owns it from one goroutine.
type Registry struct {
	path string
	recs map[string]Record
}

// Open loads the registry at path; a missing file is an empty registry. It
// creates path's directory (0700) so the first Put can write. A corrupt file
// is an error rather than an empty registry: starting empty would overwrite
// it on the first Put and forget every logout and cooldown.
func Open(path string) (*Registry, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r := &Registry{path: path, recs: make(map[string]Record)}
	var f file
	if err := statefile.Load(path, &f); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return r, nil
		}
		return nil, fmt.Errorf("registry: %w", err)
	}
	for _, rec := range f.Orgs {
		// IDs become paths; a hand-edited file must not smuggle one in.
		if err := orgid.Validate(rec.ID); err != nil {
			return nil, fmt.Errorf("registry %s: %w", path, err)
		}
		if _, dup := r.recs[rec.ID]; dup {
			return nil, fmt.Errorf("registry %s: organization %s appears twice", path, rec.ID)
		}
		r.recs[rec.ID] = rec
	}
	return r, nil
}

// Get returns a copy of id's record: changing it does not change the
// registry until it is Put back.
func (r *Registry) Get(id string) (Record, bool) {
	rec, ok := r.recs[id]
	return clone(rec), ok
}

// Put stores rec, replacing any record with the same ID, and saves the whole
// file crash-safely before returning. If saving fails the registry is left
// as it was, so memory never claims what the disk does not hold.
func (r *Registry) Put(rec Record) error {
	if err := orgid.Validate(rec.ID); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	next := maps.Clone(r.recs)
	next[rec.ID] = clone(rec)
	if err := r.save(next); err != nil {
		return fmt.Errorf("registry: put %s: %w", rec.ID, err)
	}
	r.recs = next
	return nil
}

// Delete forgets id and saves; deleting an unknown id does nothing. If
// saving fails the record stays.
func (r *Registry) Delete(id string) error {
	if _, ok := r.recs[id]; !ok {
		return nil
	}
	next := maps.Clone(r.recs)
	delete(next, id)
	if err := r.save(next); err != nil {
		return fmt.Errorf("registry: delete %s: %w", id, err)
	}
	r.recs = next
	return nil
}

// All returns copies of every record, sorted by ID.
func (r *Registry) All() []Record {
	return sorted(r.recs)
}

func (r *Registry) save(recs map[string]Record) error {
	return statefile.Save(r.path, file{Orgs: sorted(recs)})
}

func sorted(recs map[string]Record) []Record {
	out := make([]Record, 0, len(recs))
	for _, rec := range recs {
		out = append(out, clone(rec))
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// clone deep-copies the pointer and slice fields, so a caller that edits a
// record it got (badmac.Counter.Trips, *CooldownUntil) cannot change the
// registry behind its back.
func clone(rec Record) Record {
	rec.CooldownUntil = clonePtr(rec.CooldownUntil)
	rec.BanUntil = clonePtr(rec.BanUntil)
	rec.BadMAC.Trips = slices.Clone(rec.BadMAC.Trips)
	return rec
}

func clonePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}
