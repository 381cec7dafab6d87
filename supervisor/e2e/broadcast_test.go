package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
	"github.com/wa-sidecar/wa-sidecar/worker/testproxy"
)

func numbers(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// With max_jobs 2, two broadcasts send while a third waits its turn; a
// cancelled job fails its unsent messages; an idempotent retry of a create
// makes no second job.
func TestBroadcastTurns(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{set: map[string]string{`min_interval = "200ms"`: `min_interval = "300ms"`}})
	phone := "573007915306"
	e.link("bc", phone)
	ctx := context.Background()
	var jobs []statusapi.BroadcastBody
	for i := range 3 {
		b, err := e.api.CreateBroadcast(ctx, "bc", numbers(fmt.Sprintf("573001260%d", i), 4), fmt.Sprint("offer ", i), "")
		if err != nil || b.Total != 4 {
			t.Fatalf("create job %d: %+v %v", i, b, err)
		}
		jobs = append(jobs, b)
	}
	sawWaiting := false
	e.eventually(60*time.Second, "three broadcasts done", func() error {
		list, err := e.api.Broadcasts(ctx, "bc")
		if err != nil {
			return err
		}
		byID := map[string]statusapi.BroadcastBody{}
		sending := 0
		for _, b := range list.Broadcasts {
			byID[b.ID] = b
			if b.Status == "sending" {
				sending++
			}
		}
		if sending > 2 {
			t.Fatalf("%d broadcasts sending with max_jobs 2", sending)
		}
		if v := e.metric("wa_sidecar_broadcasts_active", nil); v > 2 {
			t.Fatalf("broadcasts_active = %v with max_jobs 2", v)
		}
		first, second, third := byID[jobs[0].ID], byID[jobs[1].ID], byID[jobs[2].ID]
		if third.Sent > 0 && first.Status != "done" && second.Status != "done" {
			t.Fatalf("the third job sent before a turn was free: %+v %+v", first, second)
		}
		if third.Status == "queued" && first.Status == "sending" && second.Status == "sending" {
			sawWaiting = true
		}
		for _, b := range []statusapi.BroadcastBody{first, second, third} {
			if b.Status != "done" || b.Sent != 4 || b.FinishedAt == nil {
				return fmt.Errorf("%s is %s, %d sent", b.ID, b.Status, b.Sent)
			}
		}
		return nil
	})
	if !sawWaiting {
		t.Fatal("never saw the third job waiting while two sent")
	}
	if got := len(e.deliveries(phone, true)); got != 12 {
		t.Fatalf("%d deliveries for 3 jobs of 4", got)
	}

	victim, err := e.api.CreateBroadcast(ctx, "bc", numbers("5730012700", 8), "cancel me", "")
	if err != nil {
		t.Fatal(err)
	}
	e.eventually(15*time.Second, "the job under way", func() error {
		if b, err := e.api.Broadcast(ctx, "bc", victim.ID); err != nil || b.Sent == 0 {
			return fmt.Errorf("%+v %v", b, err)
		}
		return nil
	})
	cancelled, err := e.api.CancelBroadcast(ctx, "bc", victim.ID)
	if err != nil || cancelled.Status != "cancelled" || cancelled.Failed == 0 {
		t.Fatalf("cancel: %+v %v", cancelled, err)
	}
	e.eventually(15*time.Second, "the cancelled job settled", func() error {
		b, err := e.api.Broadcast(ctx, "bc", victim.ID)
		if err != nil || b.Pending != 0 || b.Sent+b.Failed != 8 {
			return fmt.Errorf("%+v %v", b, err)
		}
		return nil
	})
	b, _ := e.api.Broadcast(ctx, "bc", victim.ID)
	sentCancel := 0
	for _, d := range e.deliveries(phone, false) {
		if d.Text == "cancel me" {
			sentCancel++
		}
	}
	if sentCancel != b.Sent {
		t.Fatalf("the recipients show %d of the cancelled job, the job says %d sent", sentCancel, b.Sent)
	}
	if v := e.metric("wa_sidecar_messages_failed_total", map[string]string{"org": "bc", "reason": "cancelled"}); v != float64(b.Failed) {
		t.Fatalf("messages_failed_total{reason=cancelled} = %v, the job failed %d", v, b.Failed)
	}

	again1, err1 := e.api.CreateBroadcast(ctx, "bc", numbers("5730012800", 2), "once", "promo-dec")
	again2, err2 := e.api.CreateBroadcast(ctx, "bc", numbers("5730012800", 2), "once", "promo-dec")
	if err1 != nil || err2 != nil || again1.ID != again2.ID {
		t.Fatalf("idempotent create: %s %v, then %s %v", again1.ID, err1, again2.ID, err2)
	}
	if list, _ := e.api.Broadcasts(ctx, "bc"); len(list.Broadcasts) != 5 {
		t.Fatalf("%d jobs after 5 creates, one of them a retry", len(list.Broadcasts))
	}
}

// The operator CLI sends one message (waiting for it) and runs a broadcast
// from standard input to completion.
func TestCLISendAndBroadcast(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	phone := "573007915307"
	e.link("cl", phone)
	cli := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(binDir, "wa-supervisor"), append(args, "-config", e.cfgPath)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("wa-supervisor %v: %v\n%s%s", args, err, out.String(), errb.String())
		}
		return out.String()
	}
	// The CLI hands numbers to the API as written: the API reads every
	// spelling it takes (here with no default_country, so with country code).
	out := cli("", "send", "-wait", "cl", "+57 300 129 0000", "from the CLI")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
		!strings.HasSuffix(lines[0], " queued") || !(strings.HasSuffix(lines[1], " sent") || strings.HasSuffix(lines[1], " delivered")) {
		t.Fatalf("send -wait printed %q", out)
	}
	out = cli("# customers\n573001290001\n\n+57 300 129 0002\n57 300 129 0001\n", "broadcast", "cl", "-", "news")
	if !strings.Contains(out, ": 2 recipients") || !strings.Contains(out, "done: sent 2/2, failed 0, pending 0") {
		t.Fatalf("broadcast printed %q", out)
	}
	if got := len(e.deliveries(phone, false)); got != 3 {
		t.Fatalf("the recipients show %d messages, want 3", got)
	}
	// start -proxy stores the proxy; the worker connects through it.
	socks := testproxy.StartSOCKS5(t, "dan", "cli-pw-3e1")
	cli(socks.URL+"\n", "start", "-proxy", "-", "cl-px")
	if s := e.waitStatus("cl-px", state.QRRequired, 30*time.Second); s.Egress != proxy.Egress(socks.URL) || socks.Carried() == 0 {
		t.Fatalf("started with -proxy: egress %q, %d connections through the proxy", s.Egress, socks.Carried())
	}
	if strings.Contains(e.logs.String(), "cli-pw-3e1") {
		t.Fatal("the proxy password shows in the log")
	}
	cmd := exec.Command(filepath.Join(binDir, "wa-supervisor"), "send", "-config", e.cfgPath, "cl", "12", "x")
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "to:") {
		t.Fatalf("a bad number: %v %s", err, b)
	}
}

// A broadcast whose organization stops sending is reported stalled after
// stalled_after (status, metric, log) and resumes where it stopped.
func TestStalledBroadcastResumes(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{set: map[string]string{`stalled_after = "5s"`: `stalled_after = "2s"`}})
	phone := "573007915308"
	e.link("st", phone)
	ctx := context.Background()
	job, err := e.api.CreateBroadcast(ctx, "st", numbers("5730013000", 10), "stall", "")
	if err != nil {
		t.Fatal(err)
	}
	e.eventually(15*time.Second, "the job under way", func() error {
		if b, err := e.api.Broadcast(ctx, "st", job.ID); err != nil || b.Sent < 2 {
			return fmt.Errorf("%+v %v", b, err)
		}
		return nil
	})
	if _, err := e.api.Stop(ctx, "st"); err != nil {
		t.Fatal(err)
	}
	e.eventually(15*time.Second, "the job reported stalled", func() error {
		b, err := e.api.Broadcast(ctx, "st", job.ID)
		if err != nil || b.Status != "stalled" {
			return fmt.Errorf("%+v %v", b, err)
		}
		if v := e.metric("wa_sidecar_broadcasts_stalled", nil); v != 1 {
			return fmt.Errorf("broadcasts_stalled = %v", v)
		}
		return nil
	})
	if !e.logs.contains(`"msg":"broadcast stalled: no message sent for stalled_after; it yields its turn until its organization can send","org":"st"`) {
		t.Fatal("no log line for the stalled job")
	}
	e.start("st")
	e.eventually(30*time.Second, "the job done after the restart", func() error {
		if b, err := e.api.Broadcast(ctx, "st", job.ID); err != nil || b.Status != "done" || b.Sent != 10 {
			return fmt.Errorf("%+v %v", b, err)
		}
		return nil
	})
	if v := e.metric("wa_sidecar_broadcasts_stalled", nil); v != 0 {
		t.Fatalf("broadcasts_stalled = %v after the job finished", v)
	}
	// A send cut by the stop may go again, with the same ID.
	if view, raw := len(e.deliveries(phone, false)), len(e.deliveries(phone, true)); view != 10 || raw > 11 {
		t.Fatalf("the recipients show %d messages (%d raw deliveries) for 10 recipients", view, raw)
	}
}
