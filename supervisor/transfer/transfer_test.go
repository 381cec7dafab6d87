package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/badmac"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/mediastore"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
	"github.com/wa-sidecar/wa-sidecar/supervisor/transfer"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

var ctx = context.Background()

const org = "acme"

// node is one supervisor's state_dir with its open state.db.
type node struct {
	dir  string
	dirs transfer.Dirs
	st   *store.Store
}

func newNode(t *testing.T) node {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "supervisor", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.EnableEvents(false, nil)
	t.Cleanup(func() { st.Close() })
	return node{dir: dir, dirs: transfer.DirsOf(dir), st: st}
}

// record is a linked organization in a LOGOUT cooldown with Bad MAC
// history: everything a move must not lose.
func record(now time.Time) lifecycle.Record {
	return lifecycle.Record{
		ID: org, Status: state.Stopped, Run: true, Linked: true, JID: "573007915262:12@s.whatsapp.net",
		Hold:    lifecycle.Hold{Until: now.Add(5 * time.Minute), Reason: lifecycle.HoldLogout},
		BadMAC:  badmac.Counter{Count: 2, LastErrorAt: now, Trips: []time.Time{now.Add(-time.Minute)}, TotalTrips: 1},
		Crashes: 1, Fingerprint: "Chrome/Linux/6.1.0", AddedAt: now.Add(-time.Hour), Proxy: "socks5://u:p@203.0.113.7:1080",
	}
}

var media = []byte("%PDF-1.4 an invoice")

func mediaID() string {
	sum := sha256.Sum256(media)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// populate gives n's organization a record, an auth directory, messages in
// every state, a broadcast, events, contacts, a restriction, counts and a
// media file.
func populate(t *testing.T, n node, now time.Time) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(n.st.SaveOrg(ctx, record(now), []webhook.Event{webhook.NewEvent(webhook.StatusChanged, org, "stopped", "", now, nil)}, now))
	auth := filepath.Join(n.dirs.Auth, org)
	must(os.MkdirAll(filepath.Join(auth, "tmp"), 0o700))
	must(os.WriteFile(filepath.Join(auth, "whatsmeow.db"), []byte("keys of the linked device"), 0o600))
	must(os.WriteFile(filepath.Join(auth, "whatsmeow.db-wal"), []byte("recent pages"), 0o600))
	must(os.WriteFile(filepath.Join(auth, "tmp", "upload"), []byte("x"), 0o600))

	lib, err := mediastore.Open(n.dirs.Media, n.st, nil)
	must(err)
	_, err = lib.Put(ctx, media, "application/pdf", "invoice.pdf", now)
	must(err)
	for i, id := range []string{"m-queued", "m-sending", "m-sent", "m-media"} {
		m := outbox.Message{ID: id, Org: org, To: "57300000000" + string(rune('1'+i)), Text: "hello " + id, WAID: "3EB0" + strings.ToUpper(id[2:]), QueuedAt: now, IdempotencyKey: "k-" + id}
		if id == "m-media" {
			m.Media = mediaID()
		}
		_, _, err := n.st.InsertMessage(ctx, m)
		must(err)
	}
	_, err = n.st.MarkSending(ctx, outbox.Message{ID: "m-sending", Org: org}, now)
	must(err)
	_, err = n.st.MarkSending(ctx, outbox.Message{ID: "m-sent", Org: org}, now)
	must(err)
	_, err = n.st.MarkSent(ctx, outbox.Message{ID: "m-sent", Org: org}, now)
	must(err)
	_, _, err = n.st.InsertBroadcast(ctx, outbox.Broadcast{ID: "b1", Org: org, Text: "promo", Status: outbox.JobQueued, Total: 2, CreatedAt: now},
		[]outbox.Message{
			{ID: "b1-1", Org: org, To: "573009990001", Text: "promo", WAID: "3EB0B11", QueuedAt: now, Broadcast: "b1"},
			{ID: "b1-2", Org: org, To: "573009990002", Text: "promo", WAID: "3EB0B12", QueuedAt: now, Broadcast: "b1"},
		})
	must(err)
	must(n.st.AddContact(ctx, org, "573001112222"))
	must(n.st.Restrict(ctx, org, now.Add(time.Hour), now))
	_, err = n.st.LinkNumber(ctx, org, "573007915262", now.Add(-72*time.Hour))
	must(err)
}

// roundTrip sends b through its wire form, as the internal route does.
func roundTrip(t *testing.T, b transfer.Bundle) transfer.Bundle {
	t.Helper()
	var buf bytes.Buffer
	if err := transfer.Encode(&buf, b); err != nil {
		t.Fatal(err)
	}
	got, err := transfer.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// view is what the API and the outbox see of one organization on a node.
type view struct {
	Record    lifecycle.Record
	Messages  []outbox.Message
	Broadcast outbox.Broadcast
	Waiting   int
	Senders   outbox.SenderState
	Linked    time.Time
	Sent      []outbox.SentCount
}

func look(t *testing.T, n node, now time.Time) view {
	t.Helper()
	var v view
	recs, err := n.st.LoadOrgs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == org {
			v.Record = r
		}
	}
	if v.Messages, err = n.st.Messages(ctx, org, outbox.Filter{Limit: 100}); err != nil {
		t.Fatal(err)
	}
	for i := range v.Messages {
		v.Messages[i].Seq = 0
	}
	v.Broadcast, _ = n.st.Broadcast(ctx, org, "b1")
	v.Broadcast.Seq = 0
	if v.Waiting, _, err = n.st.EventCounts(ctx); err != nil {
		t.Fatal(err)
	}
	senders, err := n.st.Senders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.Senders = senders[org]
	linked, err := n.st.LinkedNumbers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.Linked = linked[org]
	sent, err := n.st.SentSince(ctx, now.Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	v.Sent = sent[org]
	return v
}

func TestMoveCarriesEverythingAndArchivesTheSource(t *testing.T) {
	now := clocktest.Origin()
	src, dst := newNode(t), newNode(t)
	populate(t, src, now)
	before := look(t, src, now)

	b, err := transfer.Export(ctx, src.st, src.dirs, org)
	if err != nil {
		t.Fatal(err)
	}
	b.Run = true // it ran before the move stopped it
	var notified atomic.Int32
	dst.st.EnableEvents(false, func() { notified.Add(1) })
	if err := transfer.Import(ctx, dst.st, dst.dirs, roundTrip(t, b), now); err != nil {
		t.Fatal(err)
	}
	if notified.Load() != 1 {
		t.Errorf("the webhook dispatcher was told %d times of the imported events, want once", notified.Load())
	}
	after := look(t, dst, now)

	// A message cut off while sending goes again, with its WhatsApp ID.
	for i, m := range before.Messages {
		if m.Status == outbox.Sending {
			before.Messages[i].Status, before.Messages[i].SendingAt = outbox.Queued, time.Time{}
		}
	}
	wantRec := before.Record
	wantRec.Run = false // pending until the move activates it
	if !reflect.DeepEqual(after.Record, wantRec) {
		t.Errorf("record on the target\n got %+v\nwant %+v", after.Record, wantRec)
	}
	if !reflect.DeepEqual(after.Messages, before.Messages) {
		t.Errorf("messages on the target\n got %+v\nwant %+v", after.Messages, before.Messages)
	}
	if !reflect.DeepEqual(after.Broadcast, before.Broadcast) || after.Broadcast.Counts.Pending != 2 {
		t.Errorf("broadcast on the target\n got %+v\nwant %+v", after.Broadcast, before.Broadcast)
	}
	if after.Waiting != before.Waiting || after.Waiting == 0 {
		t.Errorf("webhook events waiting on the target: %d, on the source %d", after.Waiting, before.Waiting)
	}
	if !reflect.DeepEqual(after.Senders, before.Senders) || !after.Linked.Equal(before.Linked) || !reflect.DeepEqual(after.Sent, before.Sent) || len(after.Sent) == 0 {
		t.Errorf("pacer state on the target %+v %v %v, on the source %+v %v %v", after.Senders, after.Linked, after.Sent, before.Senders, before.Linked, before.Sent)
	}
	if pending, err := dst.st.ImportPending(ctx, org); err != nil || !pending {
		t.Errorf("import pending = %v, %v; want true", pending, err)
	}
	checkTree(t, filepath.Join(dst.dirs.Auth, org), map[string]string{
		"whatsmeow.db": "keys of the linked device", "whatsmeow.db-wal": "recent pages", "tmp/upload": "x",
	})
	if got, err := os.ReadFile(filepath.Join(dst.dirs.Media, strings.TrimPrefix(mediaID(), "sha256:"))); err != nil || !bytes.Equal(got, media) {
		t.Errorf("media on the target: %q, %v", got, err)
	}
	if _, err := dst.st.MediaInfo(ctx, mediaID()); err != nil {
		t.Errorf("media row on the target: %v", err)
	}

	if pending, err := dst.st.PendingImports(ctx); err != nil || len(pending) != 1 || pending[0] != org {
		t.Errorf("pending imports %v, %v", pending, err)
	}
	rec, err := dst.st.ActivateImport(ctx, org, now)
	if err != nil {
		t.Fatal(err)
	}
	if v := look(t, dst, now); !v.Record.Run || !rec.Run || rec.JID != before.Record.JID {
		t.Errorf("the activated record does not run as on the source: %+v", rec)
	}
	if _, err := dst.st.ActivateImport(ctx, org, now); err == nil {
		t.Error("a second activation went through")
	}
	if pending, _ := dst.st.ImportPending(ctx, org); pending {
		t.Error("still pending after the activation")
	}

	if err := transfer.Forget(ctx, src.st, src.dirs, org, now); err != nil {
		t.Fatal(err)
	}
	if v := look(t, src, now); v.Record.ID != "" || len(v.Messages) != 0 || v.Waiting != 0 || v.Linked != (time.Time{}) {
		t.Errorf("the source keeps rows of the organization: %+v", v)
	}
	if _, err := os.Stat(filepath.Join(src.dirs.Auth, org)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the source's auth directory is still live: %v", err)
	}
	archived, _ := filepath.Glob(filepath.Join(src.dirs.Auth, org+"_moved_*"))
	if len(archived) != 1 {
		t.Fatalf("archives on the source: %v", archived)
	}
	checkTree(t, archived[0], map[string]string{"whatsmeow.db": "keys of the linked device", "whatsmeow.db-wal": "recent pages", "tmp/upload": "x"})
}

// checkTree compares a directory's files with want and checks the modes.
func checkTree(t *testing.T, root string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if info.Mode().Perm() != 0o700 {
				t.Errorf("%s has mode %v, want 0700", p, info.Mode().Perm())
			}
			return nil
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, info.Mode().Perm())
		}
		raw, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		got[filepath.ToSlash(rel)] = string(raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files in %s: %v, want %v", root, got, want)
	}
}

// assertNothingImported checks the target holds no trace of the
// organization that would count: no rows, no pending mark, no auth
// directory, no partial copy.
func assertNothingImported(t *testing.T, n node) {
	t.Helper()
	recs, err := n.st.LoadOrgs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == org {
			t.Errorf("the target has a record: %+v", r)
		}
	}
	if msgs, _ := n.st.Messages(ctx, org, outbox.Filter{Limit: 10}); len(msgs) != 0 {
		t.Errorf("the target has messages: %+v", msgs)
	}
	if pending, _ := n.st.ImportPending(ctx, org); pending {
		t.Error("the target has a pending import")
	}
	if _, err := os.Stat(filepath.Join(n.dirs.Auth, org)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the target has an auth directory: %v", err)
	}
	if temps, _ := filepath.Glob(filepath.Join(n.dirs.Auth, ".import-*")); len(temps) != 0 {
		t.Errorf("partial copies left: %v", temps)
	}
}

func TestFailedImportLeavesNothing(t *testing.T) {
	now := clocktest.Origin()
	src, dst := newNode(t), newNode(t)
	populate(t, src, now)
	b, err := transfer.Export(ctx, src.st, src.dirs, org)
	if err != nil {
		t.Fatal(err)
	}
	// The last table's insert fails on the target: a message ID another
	// organization there already has (IDs are unique per node). Every
	// row written before it, and the auth directory, must go.
	if err := dst.st.SaveOrg(ctx, lifecycle.Record{ID: "other", Status: state.Stopped}, nil, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dst.st.InsertMessage(ctx, outbox.Message{ID: "m-sent", Org: "other", To: "573001", Text: "t", WAID: "X", QueuedAt: now}); err != nil {
		t.Fatal(err)
	}
	err = transfer.Import(ctx, dst.st, dst.dirs, roundTrip(t, b), now)
	if err == nil || !strings.Contains(err.Error(), "messages") {
		t.Fatalf("import over a conflicting message: %v", err)
	}
	assertNothingImported(t, dst)

	// The source is untouched and a second try, once the conflict is
	// gone, goes through.
	if v := look(t, src, now); len(v.Messages) != 6 || !v.Record.Run {
		t.Fatalf("source after the failed import: %+v", v)
	}
	if err := dst.st.ForgetOrg(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if err := transfer.Import(ctx, dst.st, dst.dirs, b, now); err != nil {
		t.Fatal(err)
	}
}

// TestImportAfterACrash puts the target in the state a kill -9 leaves at
// the worst moment, between the rename of the auth directory and the
// commit of its rows (and a partial copy from an earlier kill): the rows
// are gone with the transaction, so the directory counts for nothing, and
// the next import archives it instead of taking it for its own.
func TestImportAfterACrash(t *testing.T) {
	now := clocktest.Origin()
	src, dst := newNode(t), newNode(t)
	populate(t, src, now)
	b, err := transfer.Export(ctx, src.st, src.dirs, org)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dst.dirs.Auth, org)
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "whatsmeow.db"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(dst.dirs.Auth, ".import-"+org+"-123")
	if err := os.MkdirAll(partial, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := transfer.Import(ctx, dst.st, dst.dirs, b, now); err != nil {
		t.Fatal(err)
	}
	checkTree(t, stale, map[string]string{"whatsmeow.db": "keys of the linked device", "whatsmeow.db-wal": "recent pages", "tmp/upload": "x"})
	if _, err := os.Stat(partial); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partial copy still there: %v", err)
	}
	if archived, _ := filepath.Glob(filepath.Join(dst.dirs.Auth, org+"_moved_*")); len(archived) != 1 {
		t.Errorf("the leftover directory was not archived: %v", archived)
	}
}

func TestImportRefusesARegisteredOrganization(t *testing.T) {
	now := clocktest.Origin()
	src, dst := newNode(t), newNode(t)
	populate(t, src, now)
	b, err := transfer.Export(ctx, src.st, src.dirs, org)
	if err != nil {
		t.Fatal(err)
	}
	mine := lifecycle.Record{ID: org, Status: state.Connected, Run: true, Linked: true, JID: "571:1@s.whatsapp.net"}
	if err := dst.st.SaveOrg(ctx, mine, nil, now); err != nil {
		t.Fatal(err)
	}
	auth := filepath.Join(dst.dirs.Auth, org)
	if err := os.MkdirAll(auth, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(auth, "whatsmeow.db"), []byte("the target's own keys"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := transfer.Import(ctx, dst.st, dst.dirs, b, now); !errors.Is(err, store.ErrOrgExists) {
		t.Fatalf("import over a registered organization: %v, want ErrOrgExists", err)
	}
	checkTree(t, auth, map[string]string{"whatsmeow.db": "the target's own keys"})
	if v := look(t, dst, now); v.Record.JID != mine.JID || len(v.Messages) != 0 {
		t.Errorf("the target's organization changed: %+v", v)
	}
}

func TestRetriedImportReplacesThePendingCopy(t *testing.T) {
	now := clocktest.Origin()
	src, dst := newNode(t), newNode(t)
	populate(t, src, now)
	b, err := transfer.Export(ctx, src.st, src.dirs, org)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := transfer.Import(ctx, dst.st, dst.dirs, roundTrip(t, b), now); err != nil {
			t.Fatal(err)
		}
	}
	if v := look(t, dst, now); len(v.Messages) != 6 || v.Broadcast.Counts.Pending != 2 {
		t.Errorf("after a retried import: %d messages, broadcast %+v", len(v.Messages), v.Broadcast.Counts)
	}
}

func TestTombstoneKeepsTheLaterHold(t *testing.T) {
	now := clocktest.Origin()
	src, dst := newNode(t), newNode(t)
	populate(t, src, now)
	b, err := transfer.Export(ctx, src.st, src.dirs, org)
	if err != nil {
		t.Fatal(err)
	}
	ban := lifecycle.Hold{Until: now.Add(24 * time.Hour), Reason: lifecycle.HoldBan}
	if err := dst.st.SaveOrg(ctx, lifecycle.Record{ID: org, Status: state.Banned, Deleted: true, Hold: ban}, nil, now); err != nil {
		t.Fatal(err)
	}
	if err := transfer.Import(ctx, dst.st, dst.dirs, b, now); err != nil {
		t.Fatal(err)
	}
	if v := look(t, dst, now); !v.Record.Hold.Until.Equal(ban.Until) || v.Record.Hold.Reason != ban.Reason || v.Record.Deleted {
		t.Errorf("record over a tombstone: %+v, want the tombstone's ban", v.Record)
	}
}

func TestCheckRefusesPathsOutsideTheirDirectory(t *testing.T) {
	base := transfer.Bundle{Version: transfer.Version, Org: org, Data: store.OrgData{Org: org}}
	for _, tc := range []struct {
		name string
		edit func(*transfer.Bundle)
		want string
	}{
		{"parent", func(b *transfer.Bundle) { b.Auth = []transfer.File{{Path: "../other/whatsmeow.db"}} }, "auth file"},
		{"absolute", func(b *transfer.Bundle) { b.Auth = []transfer.File{{Path: "/etc/passwd"}} }, "auth file"},
		{"unclean", func(b *transfer.Bundle) { b.Auth = []transfer.File{{Path: "tmp/../../x"}} }, "auth file"},
		{"empty", func(b *transfer.Bundle) { b.Auth = []transfer.File{{Path: ""}} }, "auth file"},
		{"media name", func(b *transfer.Bundle) { b.Media = []transfer.File{{Path: "../../state.db"}} }, "not a media id"},
		{"media bytes", func(b *transfer.Bundle) { b.Media = []transfer.File{{Path: mediaID(), Data: []byte("other")}} }, "do not match"},
		{"org", func(b *transfer.Bundle) { b.Org = "../x" }, "invalid"},
		{"rows of another", func(b *transfer.Bundle) { b.Data.Org = "other" }, "carries the rows"},
		{"version", func(b *transfer.Bundle) { b.Version = 9 }, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := base
			tc.edit(&b)
			err := b.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check() = %v, want an error with %q", err, tc.want)
			}
		})
	}
	if err := base.Check(); err != nil {
		t.Fatalf("a good bundle: %v", err)
	}
}

func TestImportRefusesRowsOfAnotherOrganization(t *testing.T) {
	now := clocktest.Origin()
	src, dst := newNode(t), newNode(t)
	populate(t, src, now)
	b, err := transfer.Export(ctx, src.st, src.dirs, org)
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range b.Data.Tables {
		if tr.Name == "messages" {
			b.Data.Tables[i].Rows[0]["org"] = "victim"
		}
	}
	if err := transfer.Import(ctx, dst.st, dst.dirs, b, now); err == nil || !strings.Contains(err.Error(), "belongs to victim") {
		t.Fatalf("import with a foreign row: %v", err)
	}
	assertNothingImported(t, dst)
}
