package store

import (
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// recount counts a job's messages by outcome from the messages themselves.
func recount(t *testing.T, db querier, job string) outbox.Counts {
	t.Helper()
	var c outbox.Counts
	if err := db.QueryRowContext(ctx, `SELECT
		coalesce(sum(status IN ('queued', 'sending')), 0),
		coalesce(sum(status IN ('sent', 'delivered', 'read')), 0),
		coalesce(sum(status = 'failed'), 0)
		FROM messages WHERE broadcast = ?`, job).Scan(&c.Pending, &c.Sent, &c.Failed); err != nil {
		t.Fatal(err)
	}
	return c
}

// counters reads a job's counter columns.
func counters(t *testing.T, db querier, job string) outbox.Counts {
	t.Helper()
	var c outbox.Counts
	if err := db.QueryRowContext(ctx, `SELECT pending_count, sent_count, failed_count FROM broadcasts WHERE id = ?`,
		job).Scan(&c.Pending, &c.Sent, &c.Failed); err != nil {
		t.Fatal(err)
	}
	return c
}

// Every outcome of a job's messages, in any order, keeps the counter
// columns equal to a count of the messages, checked after each step.
func TestBroadcastCountersFollowEveryOutcome(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	register(t, s, "2", "3")
	s.EnableEvents(false, nil)
	o := clocktest.Origin()
	jobs := map[string][]outbox.Message{}
	for j, org := range []string{"2", "2", "3"} {
		id := fmt.Sprint("job", j)
		var msgs []outbox.Message
		for i := range 40 {
			m := msg(fmt.Sprintf("%s-%d", id, i), org, fmt.Sprintf("57%d%05d", j, i), o.Add(time.Duration(i)*time.Second))
			m.Broadcast = id
			msgs = append(msgs, m)
		}
		if _, _, err := s.InsertBroadcast(ctx, outbox.Broadcast{ID: id, Org: org, Text: "x", Total: len(msgs), CreatedAt: o}, msgs); err != nil {
			t.Fatal(err)
		}
		jobs[id] = msgs
	}
	s.InsertMessage(ctx, msg("single", "2", "573999", o))
	check := func(step string) {
		t.Helper()
		for id := range jobs {
			if got, want := counters(t, s.db, id), recount(t, s.db, id); got != want {
				t.Fatalf("after %s: %s counters %+v, recount %+v", step, id, got, want)
			}
			if b, err := s.Broadcast(ctx, jobs[id][0].Org, id); err != nil || b.Counts != recount(t, s.db, id) {
				t.Fatalf("after %s: %s reads %+v %v", step, id, b.Counts, err)
			}
		}
	}
	check("insert")
	rng := rand.New(rand.NewPCG(1, 2))
	at := o
	// A few messages of each job, so that most steps find their message
	// in a status the step moves on.
	all := slices.Concat(jobs["job0"][:12], jobs["job1"][:12], jobs["job2"][:12])
	moved := map[string]int{}
	snapshot := func() map[string]outbox.Counts {
		out := map[string]outbox.Counts{}
		for id := range jobs {
			out[id] = counters(t, s.db, id)
		}
		return out
	}
	for step := range 200 {
		at = at.Add(time.Second)
		m := all[rng.IntN(len(all))]
		before := snapshot()
		var status string
		if err := s.db.QueryRowContext(ctx, `SELECT status FROM messages WHERE id = ?`, m.ID).Scan(&status); err != nil {
			t.Fatal(err)
		}
		// Each step moves the message on the way outcomes do, picked at
		// random among those its status allows, with the host-wide ones
		// (expiry, a boot's recovery) now and then.
		var what string
		roll := rng.IntN(10)
		switch {
		case roll == 9 && step%3 == 0:
			what = "expire"
			if _, err := s.ExpireQueued(ctx, o.Add(time.Duration(rng.IntN(6))*time.Second), at); err != nil {
				t.Fatal(err)
			}
		case roll == 9:
			what = "recover"
			if _, _, err := s.RecoverSending(ctx, at); err != nil {
				t.Fatal(err)
			}
		case status == "queued" && roll < 8:
			what = "sending"
			if _, err := s.MarkSending(ctx, m, at); err != nil {
				t.Fatal(err)
			}
		case status == "sending" && roll < 4:
			what = "sent"
			if _, err := s.MarkSent(ctx, m, at); err != nil {
				t.Fatal(err)
			}
		case status == "sending" && roll < 6:
			what = "requeue"
			if _, err := s.Requeue(ctx, m, at, time.Time{}); err != nil {
				t.Fatal(err)
			}
		case status == "sending" && roll < 7, status == "sent", status == "delivered":
			what = "receipt"
			st := outbox.Delivered
			if rng.IntN(2) == 0 {
				st = outbox.Read
			}
			if _, err := s.Receipt(ctx, m.Org, []string{m.WAID}, st, at, at); err != nil {
				t.Fatal(err)
			}
		default:
			what = "fail"
			if _, _, err := s.Fail(ctx, m, "server_error_479", at); err != nil {
				t.Fatal(err)
			}
		}
		if !maps.Equal(snapshot(), before) {
			moved[what]++
		}
		check(fmt.Sprintf("step %d (%s %s)", step, what, m.ID))
		if step == 100 {
			// Two of job1's messages are being sent when it is cancelled:
			// one gets no answer and is put back (it fails, cancelled),
			// the other is left to a boot's recovery (likewise).
			s.MarkSending(ctx, jobs["job1"][30], at)
			s.MarkSending(ctx, jobs["job1"][31], at)
			check("sending before the cancel")
			s.CancelBroadcast(ctx, "2", "job1", at)
			check("cancel")
			if got, err := s.Requeue(ctx, jobs["job1"][30], at, time.Time{}); err != nil || got.Status != outbox.Failed {
				t.Fatalf("requeue in a cancelled job: %+v %v", got, err)
			}
			check("requeue in a cancelled job")
			if _, failed, err := s.RecoverSending(ctx, at); err != nil || !slices.ContainsFunc(failed, func(f outbox.Message) bool {
				return f.ID == jobs["job1"][31].ID
			}) {
				t.Fatalf("recover in a cancelled job: %+v %v", failed, err)
			}
			check("recover in a cancelled job")
		}
	}
	t.Logf("steps that changed a count: %v", moved)
	for _, what := range []string{"sent", "receipt", "fail", "expire"} {
		if moved[what] == 0 {
			t.Errorf("no %s step changed a count: the mix does not cover it (%v)", what, moved)
		}
	}
	if err := s.SaveOrg(ctx, lifecycle.Record{ID: "3", Status: state.Stopped, Deleted: true}, nil, at); err != nil {
		t.Fatal(err)
	}
	check("org deleted")
	if c := counters(t, s.db, "job2"); c.Pending != 0 || c.Failed == 0 {
		t.Fatalf("an org's deletion left %+v", c)
	}
}

// A database from before the counter columns gets its jobs' counters from
// their messages, and the triggers keep them from there.
func TestMigrationBackfillsBroadcastCounters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	// The schema just before the migration that adds the counters, by its
	// content rather than its number: migrations are renumbered on merges.
	adds := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "ADD COLUMN pending_count") })
	if adds < 0 {
		t.Fatal("no migration adds the counter columns")
	}
	for v := 1; v < adds; v++ {
		if _, err := db.Exec(migrations[v]); err != nil {
			t.Fatalf("migration %d: %v", v, err)
		}
	}
	o := clocktest.Origin().UnixMilli()
	statuses := []string{"queued", "sending", "sent", "delivered", "read", "failed", "failed", "sent"}
	for j, job := range []string{"a", "b"} {
		if _, err := db.Exec(`INSERT INTO broadcasts (id, org, text, status, total, created_at) VALUES (?, '2', 'x', 'sending', ?, ?)`,
			job, len(statuses)-j*3, o); err != nil {
			t.Fatal(err)
		}
		for i, st := range statuses[j*3:] {
			if _, err := db.Exec(`INSERT INTO messages (id, org, recipient, text, wa_id, status, broadcast, queued_at)
				VALUES (?, '2', ?, 'x', ?, ?, ?, ?)`, fmt.Sprint(job, i), fmt.Sprint("5730", j, i), fmt.Sprint("3EB0", job, i), st, job, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.Exec(`INSERT INTO broadcasts (id, org, text, status, total, created_at) VALUES ('empty', '2', 'x', 'done', 0, ?)`, o); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, adds-1)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, path)
	want := map[string]outbox.Counts{"a": {Pending: 2, Sent: 4, Failed: 2}, "b": {Sent: 3, Failed: 2}, "empty": {}}
	for job, w := range want {
		if got := counters(t, s.db, job); got != w || got != recount(t, s.db, job) {
			t.Errorf("%s: counters %+v after the migration, want %+v", job, got, w)
		}
	}
	m := outbox.Message{ID: "a1", Org: "2", WAID: "3EB0a1", Broadcast: "a"}
	if ok, err := s.MarkSent(ctx, m, clocktest.Origin()); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got := counters(t, s.db, "a"); got != (outbox.Counts{Pending: 1, Sent: 5, Failed: 2}) {
		t.Errorf("after an ack on the migrated database: %+v", got)
	}
}
