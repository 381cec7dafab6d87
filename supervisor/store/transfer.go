package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

// OrgData is every row of state.db that belongs to one organization, as a
// move carries it from one node to another: the record with its holds,
// its broadcasts and messages (queued ones and the history), its webhook
// events not yet delivered, the contacts and restriction the pacer keeps,
// the counts of the daily limit and the warm-up, and the rows of the media
// files its messages name. Rows are column maps, so a bundle stays readable
// and a column added by a later migration travels without code here.
type OrgData struct {
	Org string `json:"org"`
	// Schema is the source's schema version: an import into another
	// version is refused, since the columns may mean something else.
	Schema int         `json:"schema"`
	Tables []TableRows `json:"tables"`
}

// TableRows are one table's rows, in the order they are inserted.
type TableRows struct {
	Name string           `json:"name"`
	Rows []map[string]any `json:"rows"`
}

// transferTable says how one table's rows of an organization are found and
// written back. The list is fixed in code: a bundle names tables and
// columns, and only those known here (and present in the target's schema)
// ever reach a statement.
type transferTable struct {
	name string
	// where selects the organization's rows, with one ? for its id.
	where string
	// omit are columns the target assigns itself (AUTOINCREMENT order).
	omit []string
	// orgColumn holds the organization's id in each row; "" for media,
	// which is shared by content between organizations.
	orgColumn string
	// shared rows are kept on the source and merged on the target
	// (ON CONFLICT DO NOTHING).
	shared bool
}

var transferTables = []transferTable{
	{name: "orgs", where: `id = ?`, orgColumn: "id"},
	{name: "broadcasts", where: `org = ? ORDER BY seq`, omit: []string{"seq"}, orgColumn: "org"},
	{name: "messages", where: `org = ? ORDER BY seq`, omit: []string{"seq"}, orgColumn: "org"},
	{name: "webhook_events", where: `org = ? ORDER BY seq`, omit: []string{"seq"}, orgColumn: "org"},
	{name: "contacts", where: `org = ?`, orgColumn: "org"},
	{name: "senders", where: `org = ?`, orgColumn: "org"},
	{name: "sent_quarters", where: `org = ?`, orgColumn: "org"},
	{name: "linked_numbers", where: `org = ?`, orgColumn: "org"},
	{name: "media", where: `id IN (SELECT media FROM messages WHERE org = ?1 AND media != ''
		UNION SELECT media FROM broadcasts WHERE org = ?1 AND media != '')`, shared: true},
}

// pendingKey marks, in meta, an organization imported by a move that has
// not been activated yet: the move may still fail before the owner flips,
// and a retry must be able to replace the copy.
func pendingKey(org string) string { return "import_pending/" + org }

// ErrOrgExists refuses an import of an organization this node already has.
var ErrOrgExists = errors.New("the organization already exists on this node")

// ExportOrg reads every row of org in one read transaction, so the rows
// agree with each other. Messages that were being sent go back to queued:
// the worker is stopped before an export, and the target sends them again
// with the same WhatsApp ID, which the recipient's phone shows once. It
// returns ErrUnknownOrg-wrapping errors when org has no record.
func (s *Store) ExportOrg(ctx context.Context, org string) (OrgData, error) {
	out := OrgData{Org: org}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return OrgData{}, fmt.Errorf("export %s: %w", org, err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&out.Schema); err != nil {
		return OrgData{}, fmt.Errorf("export %s: schema version: %w", org, err)
	}
	for _, t := range transferTables {
		rows, err := selectRows(ctx, tx, t, org)
		if err != nil {
			return OrgData{}, fmt.Errorf("export %s: %s: %w", org, t.name, err)
		}
		if t.name == "orgs" && len(rows) == 0 {
			return OrgData{}, fmt.Errorf("export %s: %w", org, ErrNoOrg)
		}
		if t.name == "messages" {
			for _, r := range rows {
				if r["status"] == "sending" {
					r["status"], r["sending_at"] = "queued", int64(0)
				}
			}
		}
		out.Tables = append(out.Tables, TableRows{Name: t.name, Rows: rows})
	}
	return out, nil
}

// ErrNoOrg: the store has no record of the organization.
var ErrNoOrg = errors.New("no such organization in state.db")

func selectRows(ctx context.Context, tx *sql.Tx, t transferTable, org string) ([]map[string]any, error) {
	rows, err := tx.QueryContext(ctx, `SELECT * FROM `+t.name+` WHERE `+t.where, org)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			if slices.Contains(t.omit, c) {
				continue
			}
			if b, ok := vals[i].([]byte); ok {
				vals[i] = string(b)
			}
			row[c] = vals[i]
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// ImportOrg writes d in one transaction: nothing of it is visible unless
// all of it is. The record is written stopped (run = 0) and marked pending
// until ActivateImport: before the owner flips, the copy must never start a
// worker, also after a restart of this node; run (whether it ran on the
// source) waits in the mark for the activation. beforeCommit runs inside the
// transaction after every row is written (the caller puts the auth
// directory in place there); its error rolls everything back.
//
// An organization this node already has is refused with ErrOrgExists,
// unless it is a pending import (a retried move, replaced) or a tombstone
// (its holds are kept where they end later than the imported ones).
func (s *Store) ImportOrg(ctx context.Context, d OrgData, run bool, beforeCommit func() error) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var schema int
		if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&schema); err != nil {
			return err
		}
		if schema != d.Schema {
			return fmt.Errorf("the bundle has schema version %d and this node %d: run the same wa-supervisor version on both nodes", d.Schema, schema)
		}
		tombHold, err := s.clearForImport(ctx, tx, d.Org)
		if err != nil {
			return err
		}
		byName := map[string]TableRows{}
		for _, tr := range d.Tables {
			if _, dup := byName[tr.Name]; dup {
				return fmt.Errorf("table %s appears twice", tr.Name)
			}
			byName[tr.Name] = tr
		}
		for name := range byName {
			if !slices.ContainsFunc(transferTables, func(t transferTable) bool { return t.name == name }) {
				return fmt.Errorf("table %q is not part of an organization", name)
			}
		}
		if len(byName["orgs"].Rows) != 1 {
			return fmt.Errorf("the bundle must hold exactly one organization record, not %d", len(byName["orgs"].Rows))
		}
		for _, t := range transferTables {
			if err := insertRows(ctx, tx, t, d.Org, byName[t.name].Rows); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		}
		if len(byName["webhook_events"].Rows) > 0 {
			// The dispatcher hears of them after the commit, as of
			// events emitted here.
			s.emitted.Store(true)
		}
		// The insert triggers counted the messages into their broadcasts
		// on top of the counts the rows carry, which already hold them
		// (and the pruned ones): the carried counts are the truth.
		for _, b := range byName["broadcasts"].Rows {
			if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET pending_count = ?, sent_count = ?, failed_count = ? WHERE id = ?`,
				b["pending_count"], b["sent_count"], b["failed_count"], b["id"]); err != nil {
				return fmt.Errorf("broadcast counts: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE orgs SET run = 0,
			hold_until = CASE WHEN ? > hold_until THEN ? ELSE hold_until END,
			hold_reason = CASE WHEN ? > hold_until THEN ? ELSE hold_reason END WHERE id = ?`,
			tombHold.until, tombHold.until, tombHold.until, tombHold.reason, d.Org); err != nil {
			return fmt.Errorf("stop the imported record: %w", err)
		}
		// Whether it ran on the source (its record, exported after the
		// stop, says stopped) waits in the mark for the activation.
		mark := "0"
		if run {
			mark = "1"
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, pendingKey(d.Org), mark); err != nil {
			return fmt.Errorf("mark the import pending: %w", err)
		}
		if beforeCommit != nil {
			return beforeCommit()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("import %s: %w", d.Org, err)
	}
	return nil
}

type hold struct {
	until  int64
	reason string
}

// clearForImport makes room for the import of org: nothing of a pending
// import stays, a tombstone goes but its hold comes back (returned), and a
// registered organization refuses the import.
func (s *Store) clearForImport(ctx context.Context, tx *sql.Tx, org string) (hold, error) {
	var (
		deleted bool
		h       hold
	)
	err := tx.QueryRowContext(ctx, `SELECT deleted, hold_until, hold_reason FROM orgs WHERE id = ?`, org).Scan(&deleted, &h.until, &h.reason)
	if isNoRows(err) {
		return hold{}, deleteOrgRows(ctx, tx, org)
	}
	if err != nil {
		return hold{}, err
	}
	var pending string
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, pendingKey(org)).Scan(&pending)
	switch {
	case err == nil:
		h = hold{}
	case !isNoRows(err):
		return hold{}, err
	case !deleted:
		return hold{}, ErrOrgExists
	}
	return h, deleteOrgRows(ctx, tx, org)
}

func insertRows(ctx context.Context, tx *sql.Tx, t transferTable, org string, rows []map[string]any) error {
	if len(rows) == 0 {
		return nil
	}
	known, err := tableColumns(ctx, tx, t.name)
	if err != nil {
		return err
	}
	for i, row := range rows {
		if t.orgColumn != "" && row[t.orgColumn] != org {
			return fmt.Errorf("row %d belongs to %v, not %s", i, row[t.orgColumn], org)
		}
		cols := make([]string, 0, len(row))
		for c := range row {
			if !slices.Contains(known, c) || slices.Contains(t.omit, c) {
				return fmt.Errorf("row %d: unknown column %q", i, c)
			}
			cols = append(cols, c)
		}
		slices.Sort(cols)
		args := make([]any, len(cols))
		for j, c := range cols {
			v, err := sqlValue(row[c])
			if err != nil {
				return fmt.Errorf("row %d: column %s: %w", i, c, err)
			}
			args[j] = v
		}
		q := `INSERT INTO ` + t.name + ` ("` + strings.Join(cols, `", "`) + `") VALUES (` +
			strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + `)`
		if t.shared {
			q += ` ON CONFLICT DO NOTHING`
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
	}
	return nil
}

// sqlValue turns a value decoded from JSON (numbers as json.Number) back
// into what SQLite stored: STRICT tables take integers, not floats.
func sqlValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, int64, float64, bool:
		return x, nil
	case int:
		return int64(x), nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, nil
		}
		return x.Float64()
	}
	return nil, fmt.Errorf("a value of type %T", v)
}

func tableColumns(ctx context.Context, tx *sql.Tx, table string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// deleteOrgRows removes every row of org but the shared media rows.
func deleteOrgRows(ctx context.Context, tx *sql.Tx, org string) error {
	// Messages before broadcasts: the count triggers update the jobs.
	for _, t := range []string{"messages", "broadcasts", "webhook_events", "contacts", "senders", "sent_quarters", "linked_numbers"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE org = ?`, org); err != nil {
			return fmt.Errorf("delete %s: %w", t, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM orgs WHERE id = ?`, org); err != nil {
		return fmt.Errorf("delete orgs: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, pendingKey(org)); err != nil {
		return fmt.Errorf("delete meta: %w", err)
	}
	return nil
}

// PendingImports lists the organizations imported by a move and not
// activated yet: at boot, those this node owns are activated (the move's
// source flipped the owner but did not get to say so), the others are a
// failed move's leftovers.
func (s *Store) PendingImports(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT substr(key, length('import_pending/') + 1) FROM meta WHERE key LIKE 'import_pending/%' ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("pending imports: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var org string
		if err := rows.Scan(&org); err != nil {
			return nil, fmt.Errorf("pending imports: %w", err)
		}
		out = append(out, org)
	}
	return out, rows.Err()
}

// ImportPending says whether org is an import not activated yet.
func (s *Store) ImportPending(ctx context.Context, org string) (bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, pendingKey(org)).Scan(&v)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("import of %s: %w", org, err)
	}
	return true, nil
}

// ActivateImport ends org's pending import once this node owns it: the
// record runs again as it ran on the source, at at. It returns the record
// as committed, for the fleet to adopt.
func (s *Store) ActivateImport(ctx context.Context, org string, at time.Time) (lifecycle.Record, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var run string
		err := tx.QueryRowContext(ctx, `DELETE FROM meta WHERE key = ? RETURNING value`, pendingKey(org)).Scan(&run)
		if isNoRows(err) {
			return fmt.Errorf("no pending import")
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE orgs SET run = ?, updated_at = ? WHERE id = ?`, run == "1", millis(at), org)
		return err
	})
	if err != nil {
		return lifecycle.Record{}, fmt.Errorf("activate the import of %s: %w", org, err)
	}
	recs, err := s.LoadOrgs(ctx)
	if err != nil {
		return lifecycle.Record{}, err
	}
	for _, r := range recs {
		if r.ID == org {
			return r, nil
		}
	}
	return lifecycle.Record{}, fmt.Errorf("activate the import of %s: %w", org, ErrNoOrg)
}

// ForgetOrg removes every row of org in one transaction: the source of a
// move, once the target owns the organization. Its auth directory is
// archived by the caller, never deleted; media rows stay (shared).
func (s *Store) ForgetOrg(ctx context.Context, org string) error {
	if err := s.tx(ctx, func(tx *sql.Tx) error { return deleteOrgRows(ctx, tx, org) }); err != nil {
		return fmt.Errorf("forget %s: %w", org, err)
	}
	return nil
}
