package outbox

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func noJitter(min, _ time.Duration) time.Duration { return min }

// sendAll sends as soon as the pacer allows, n times, and returns when.
func sendAll(p *pacer, start time.Time, n int) []time.Time {
	now := start
	var at []time.Time
	for range n {
		wait, _ := p.reserve(now)
		now = now.Add(wait)
		p.sent(now)
		at = append(at, now)
	}
	return at
}

func TestPacerKeepsMinInterval(t *testing.T) {
	p := newPacer(2*time.Second, 600, [2]time.Duration{}, noJitter)
	at := sendAll(p, t0, 5)
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap != 2*time.Second {
			t.Fatalf("gap %d = %s", i, gap)
		}
	}
}

// No minute holds more than per_minute sends, however many wait.
func TestPacerPerMinuteCap(t *testing.T) {
	p := newPacer(0, 20, [2]time.Duration{}, noJitter)
	at := sendAll(p, t0, 100)
	for i := range at {
		n := 0
		for _, b := range at[i:] {
			if b.Sub(at[i]) < time.Minute {
				n++
			}
		}
		if n > 20 {
			t.Fatalf("%d sends in the minute from %s", n, at[i].Sub(t0))
		}
	}
	if got := at[len(at)-1].Sub(t0); got < 4*time.Minute {
		t.Fatalf("100 sends at 20 a minute took %s", got)
	}
}

func TestPacerJitterAndCancel(t *testing.T) {
	p := newPacer(time.Second, 60, [2]time.Duration{time.Second, 3 * time.Second},
		func(min, max time.Duration) time.Duration { return max })
	p.sent(t0)
	wait, cancel := p.reserve(t0)
	if wait != 4*time.Second {
		t.Fatalf("wait %s, want min_interval 1s + jitter 3s", wait)
	}
	cancel()
	// The cancelled turn is given back: the bucket is as before.
	p2 := newPacer(time.Second, 60, [2]time.Duration{time.Second, 3 * time.Second},
		func(min, max time.Duration) time.Duration { return max })
	p2.sent(t0)
	w1, _ := p.reserve(t0.Add(10 * time.Second))
	w2, _ := p2.reserve(t0.Add(10 * time.Second))
	if w1 != w2 {
		t.Fatalf("after a cancel %s, fresh %s", w1, w2)
	}
}

// After a restart the bucket's token of the last send is spent: per_minute
// holds across it, not only min_interval.
func TestPacerRestore(t *testing.T) {
	p := newPacer(0, 1, [2]time.Duration{}, noJitter)
	p.restore(t0, t0)
	if wait, _ := p.reserve(t0.Add(10 * time.Second)); wait != 50*time.Second {
		t.Fatalf("first send 10s after the restored one waits %s, want 50s", wait)
	}
}

// A last send recorded in the future (the wall clock stepped back, or a
// state.db from a host whose clock ran ahead) counts as a send now: the old
// restore trusted it and held the organization's sending back until then.
func TestPacerRestoreFromTheFuture(t *testing.T) {
	for _, ahead := range []time.Duration{time.Second, time.Hour, 48 * time.Hour, 365 * 24 * time.Hour} {
		p := newPacer(2*time.Second, 20, [2]time.Duration{}, noJitter)
		p.restore(t0.Add(ahead), t0)
		if wait, _ := p.reserve(t0); wait != 3*time.Second {
			t.Fatalf("last send %s ahead: the next waits %s, want one pacing turn (3s)", ahead, wait)
		}
	}
}

// The jitter is drawn once per send: waking up early does not draw again.
func TestPacerJitterDrawnOncePerSend(t *testing.T) {
	draws := 0
	p := newPacer(0, 600, [2]time.Duration{0, time.Second}, func(_, max time.Duration) time.Duration {
		draws++
		return max / time.Duration(draws)
	})
	w1, cancel := p.reserve(t0)
	cancel()
	w2, cancel := p.reserve(t0)
	cancel()
	if w1 != w2 || draws != 1 {
		t.Fatalf("waits %s then %s with %d draws", w1, w2, draws)
	}
	p.sent(t0.Add(w2))
	p.reserve(t0.Add(time.Minute))
	if draws != 2 {
		t.Fatalf("%d draws after a send", draws)
	}
}

func TestGiveUp(t *testing.T) {
	if giveUp(maxAttempts-1) || !giveUp(maxAttempts) {
		t.Fatalf("giveUp around %d", maxAttempts)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		resp    *pb.SendTextResponse
		err     error
		outcome Outcome
		reason  string
	}{
		{&pb.SendTextResponse{Id: "x"}, nil, OutcomeSent, ""},
		{&pb.SendTextResponse{ServerError: 463}, nil, OutcomeRestricted, ""},
		{&pb.SendTextResponse{ServerError: 479}, nil, OutcomeFailed, "server_error_479"},
		{&pb.SendTextResponse{ServerError: 500}, nil, OutcomeFailed, "server_error_500"},
		{nil, errors.New("rpc error: code = Unavailable"), OutcomeUnknown, ""},
	}
	for _, c := range cases {
		if o, r := classify(c.resp, c.err); o != c.outcome || r != c.reason {
			t.Errorf("classify(%v, %v) = %v %q, want %v %q", c.resp, c.err, o, r, c.outcome, c.reason)
		}
	}
}

func TestRetryWaitIsNeverHot(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 7: time.Minute, 100: time.Minute} {
		if got := retryWait(n); got != want {
			t.Errorf("retryWait(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestPlanJobs(t *testing.T) {
	connected := func(org string) bool { return org != "off" }
	now := t0.Add(time.Hour)
	cases := []struct {
		name string
		jobs []JobView
		want []JobChange
	}{
		{"two of three send", []JobView{
			{ID: "a", Org: "x", Status: JobQueued}, {ID: "b", Org: "y", Status: JobQueued}, {ID: "c", Org: "x", Status: JobQueued},
		}, []JobChange{{"a", JobSending}, {"b", JobSending}}},
		{"full", []JobView{
			{ID: "a", Status: JobSending, ProgressAt: now}, {ID: "b", Status: JobSending, ProgressAt: now}, {ID: "c", Org: "x", Status: JobQueued},
		}, nil},
		{"a stall frees a turn", []JobView{
			{ID: "a", Org: "off", Status: JobSending, ProgressAt: now.Add(-10 * time.Minute)},
			{ID: "b", Status: JobSending, ProgressAt: now}, {ID: "c", Org: "x", Status: JobQueued},
		}, []JobChange{{"a", JobStalled}, {"c", JobSending}}},
		{"a disconnected org's job waits", []JobView{
			{ID: "a", Org: "off", Status: JobQueued}, {ID: "b", Org: "x", Status: JobQueued},
		}, []JobChange{{"b", JobSending}}},
		{"queued before stalled", []JobView{
			{ID: "s", Org: "x", Status: JobStalled}, {ID: "q", Org: "y", Status: JobQueued}, {ID: "r", Org: "y", Status: JobQueued},
		}, []JobChange{{"q", JobSending}, {"r", JobSending}}},
		{"a stalled job comes back", []JobView{
			{ID: "s", Org: "x", Status: JobStalled},
		}, []JobChange{{"s", JobSending}}},
		{"a stalled job stays while its org cannot send", []JobView{
			{ID: "s", Org: "off", Status: JobStalled},
		}, nil},
		{"more sending than max_jobs: the newest wait", []JobView{
			{ID: "a", Status: JobSending, ProgressAt: now}, {ID: "b", Status: JobSending, ProgressAt: now},
			{ID: "c", Status: JobSending, ProgressAt: now}, {ID: "d", Status: JobSending, ProgressAt: now},
		}, []JobChange{{"d", JobQueued}, {"c", JobQueued}}},
	}
	for _, c := range cases {
		if got := planJobs(c.jobs, 2, connected, now, 5*time.Minute); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestIDs(t *testing.T) {
	id, wa := newID("msg_"), newWAID()
	if len(id) != 4+26 || len(wa) != 22 || wa[:4] != "3EB0" {
		t.Fatalf("id %q, wa id %q", id, wa)
	}
	if newID("msg_") == id || newWAID() == wa {
		t.Fatal("ids repeat")
	}
}

// The rules the store applies in its transactions, moved here so that the
// store is only SQL.
func TestJobRules(t *testing.T) {
	for _, c := range []struct {
		status  JobStatus
		pending bool
		want    bool
	}{
		{JobSending, false, true}, {JobStalled, false, true}, {JobQueued, false, true},
		{JobSending, true, false}, {JobDone, false, false}, {JobCancelled, false, false},
	} {
		if got := JobFinished(c.status, c.pending); got != c.want {
			t.Errorf("JobFinished(%s, pending %v) = %v", c.status, c.pending, got)
		}
	}
	for _, c := range []struct {
		last, at time.Time
		want     bool
	}{
		{time.Time{}, t0, true}, {t0, t0.Add(ProgressEvery - time.Millisecond), false}, {t0, t0.Add(ProgressEvery), true},
	} {
		if got := ProgressEventDue(c.last, c.at); got != c.want {
			t.Errorf("ProgressEventDue(%s, %s) = %v", c.last, c.at, got)
		}
	}
	for _, c := range []struct {
		registered, cancelled bool
		status                Status
		reason                string
	}{
		{true, false, Queued, ""}, {true, true, Failed, "cancelled"},
		{false, false, Failed, ReasonOrgDeleted}, {false, true, Failed, ReasonOrgDeleted},
	} {
		if st, reason := RequeueOutcome(c.registered, c.cancelled); st != c.status || reason != c.reason {
			t.Errorf("RequeueOutcome(%v, %v) = %s %q", c.registered, c.cancelled, st, reason)
		}
	}
}

// The hash names the set of numbers: order and duplicates do not matter,
// any other number does.
func TestRecipientsHash(t *testing.T) {
	a := RecipientsHash([]string{"573001", "573002"})
	if b := RecipientsHash([]string{"573002", "573001", "573002"}); a != b {
		t.Fatal("the same recipients in another order hash differently")
	}
	if c := RecipientsHash([]string{"573001", "573003"}); a == c {
		t.Fatal("other recipients hash the same")
	}
	if RecipientsHash([]string{"5730011", "2"}) == RecipientsHash([]string{"573001", "12"}) {
		t.Fatal("numbers run together")
	}
}
