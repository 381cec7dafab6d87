package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// 1. QR → scan → connected; a good message changes no Bad MAC count.
func TestPairThenGoodMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	jid := e.link("2", "573007915262")

	if _, err := os.Stat(filepath.Join(e.stateDir, "auth_sessions", "2")); err != nil {
		t.Fatalf("auth directory missing: %v", err)
	}
	e.control(http.MethodPost, "/control/devices/573007915262/message", map[string]string{"from": "573001112222", "text": "hola"}, nil)
	e.eventually(10*time.Second, "the message to arrive", func() error {
		if s := e.status("2"); s.LastEvent != "message" {
			return fmt.Errorf("last event %s", s.LastEvent)
		}
		return nil
	})
	s := e.status("2")
	if s.BadMAC.Count != 0 || s.BadMAC.Trips != 0 || s.Status != state.Connected || s.JID != jid {
		t.Fatalf("after a good message: %+v", s)
	}
	if got := e.metric("wa_sidecar_badmac_errors_total", map[string]string{"org": "2"}); got != 0 {
		t.Fatalf("badmac_errors_total = %v", got)
	}
	if got := e.metric("wa_sidecar_org_status", map[string]string{"org": "2", "status": "connected"}); got != 1 {
		t.Fatalf("org_status connected = %v", got)
	}
}

// 2. Bad MAC below the limit, after the reset, at the limit; archives pruned to keep_archives.
func TestBadMACPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	phone := "573007915263"
	e.link("bm", phone)
	badmac := func(n int) {
		e.control(http.MethodPost, "/control/devices/"+phone+"/badmac", map[string]int{"count": n}, nil)
	}
	waitErrors := func(total float64) {
		e.eventually(10*time.Second, fmt.Sprintf("%v Bad MAC errors counted", total), func() error {
			if got := e.metric("wa_sidecar_badmac_errors_total", map[string]string{"org": "bm"}); got != total {
				return fmt.Errorf("badmac_errors_total = %v", got)
			}
			return nil
		})
	}

	badmac(4)
	waitErrors(4)
	if s := e.status("bm"); s.BadMAC.Count != 4 || s.BadMAC.Trips != 0 || s.Status != state.Connected {
		t.Fatalf("after 4: %+v", s)
	}
	waitReset := func() {
		e.eventually(10*time.Second, "the counter to reset", func() error {
			if s := e.status("bm"); s.BadMAC.Count != 0 {
				return fmt.Errorf("count %d", s.BadMAC.Count)
			}
			return nil
		})
	}
	waitReset()
	badmac(4)
	waitErrors(8)
	if s := e.status("bm"); s.BadMAC.Trips != 0 || len(e.archives("bm", "corrupted")) != 0 {
		t.Fatalf("tripped across a reset: %+v", s)
	}
	waitReset()

	lastQR := ""
	for trip := 1; trip <= 4; trip++ {
		if trip > 1 {
			qr := e.waitStatus("bm", state.QRRequired, 30*time.Second)
			e.control(http.MethodPost, "/control/scan", map[string]string{"qr_code": qr.QRCode, "phone": phone}, nil)
			e.waitStatus("bm", state.Connected, 30*time.Second)
		}
		badmac(5)
		e.eventually(15*time.Second, fmt.Sprintf("trip %d", trip), func() error {
			if s := e.status("bm"); s.BadMAC.Trips != trip {
				return fmt.Errorf("trips %d", s.BadMAC.Trips)
			}
			return nil
		})
		qr := e.waitStatus("bm", state.QRRequired, 30*time.Second)
		if qr.QRCode == lastQR || qr.JID != "" {
			t.Fatalf("trip %d: no fresh QR (%q) or JID kept (%q)", trip, qr.QRCode, qr.JID)
		}
		lastQR = qr.QRCode
		want := min(trip, 3)
		if got := e.archives("bm", "corrupted"); len(got) != want {
			t.Fatalf("trip %d: archives %v, want %d", trip, got, want)
		}
	}
	got := e.archives("bm", "corrupted")
	sort.Strings(got)
	for _, a := range got {
		ms, err := strconv.ParseInt(a[len("bm_corrupted_"):], 10, 64)
		if err != nil || time.Since(time.UnixMilli(ms)) > 5*time.Minute {
			t.Fatalf("archive name %q is not <org>_corrupted_<unix-ms>", a)
		}
	}
	if v := e.metric("wa_sidecar_badmac_trips_total", map[string]string{"org": "bm"}); v != 4 {
		t.Fatalf("badmac_trips_total = %v", v)
	}
	if v := e.metric("wa_sidecar_sessions_cleared_total", map[string]string{"org": "bm", "reason": "bad_mac_errors"}); v != 4 {
		t.Fatalf("sessions_cleared_total = %v", v)
	}
}

// 3. LOGOUT: no restart, 409 + Retry-After during the cooldown, then a new QR.
func TestLogoutCooldown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	phone := "573007915264"
	e.link("lo", phone)
	pid := e.status("lo").WorkerPID
	e.control(http.MethodPost, "/control/devices/"+phone+"/logout", nil, nil)
	s := e.waitStatus("lo", state.LoggedOut, 15*time.Second)
	if s.CooldownUntil == nil {
		t.Fatalf("no cooldown after logout: %+v", s)
	}
	e.eventually(10*time.Second, "the worker to exit", func() error {
		if alive(pid) {
			return errors.New("still running")
		}
		return nil
	})
	assertCooldownRefusal(t, e, "lo")
	if s := e.status("lo"); s.Status != state.LoggedOut || s.WorkerPID != 0 {
		t.Fatalf("restarted during cooldown: %+v", s)
	}
	e.eventually(15*time.Second, "the cooldown to end", func() error {
		_, err := e.api.Start(context.Background(), "lo")
		return err
	})
	e.waitStatus("lo", state.QRRequired, 30*time.Second)
	if got := e.archives("lo", "loggedout"); len(got) != 1 {
		t.Fatalf("logged-out store not archived: %v", got)
	}
}

func assertCooldownRefusal(t *testing.T, e *env, org string) {
	t.Helper()
	_, err := e.api.Start(context.Background(), org)
	var ae *apiclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != "cooldown" || ae.Message == "" {
		t.Fatalf("start during cooldown: %v", err)
	}
	if ae.RetryAfter <= 0 {
		t.Fatalf("no Retry-After on the 409: %+v", ae)
	}
}

// 3b. A login rejected with 401 behaves like a LOGOUT.
func TestRejectedLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	phone := "573007915265"
	e.link("rj", phone)
	pid := e.status("rj").WorkerPID
	e.control(http.MethodPost, "/control/devices/"+phone+"/reject-login", nil, nil)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("rj", state.LoggedOut, 30*time.Second)
	assertCooldownRefusal(t, e, "rj")
}

// 3c. Replaced: no automatic restart.
func TestReplaced(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	phone := "573007915266"
	e.link("rp", phone)
	e.control(http.MethodPost, "/control/devices/"+phone+"/replace", nil, nil)
	e.waitStatus("rp", state.Replaced, 15*time.Second)
	// Any restart is decided at the latest when the worker has been reaped,
	// and logged then: after that line, the absence of one is final.
	e.eventually(15*time.Second, "the replaced worker to be reaped", func() error {
		if !e.logs.contains(`"msg":"worker exited","org":"rp"`) {
			return errors.New("not yet")
		}
		return nil
	})
	if e.logs.contains(`restarting after a backoff","org":"rp"`) || len(e.logs.times(`"msg":"starting worker","org":"rp"`)) != 1 {
		t.Fatal("a replaced session is restarting")
	}
	if s := e.status("rp"); s.Status != state.Replaced || s.WorkerPID != 0 {
		t.Fatalf("after the reap: %+v", s)
	}
}

// 4. kill -9 of a connected worker: back to connected on the same auth, no QR.
func TestWorkerKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	jid := e.link("wk", "573007915267")
	old := e.status("wk").WorkerPID
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Second, "a new worker connected", func() error {
		s := e.status("wk")
		if s.Status == state.QRRequired || s.QR != "" {
			t.Fatalf("a QR was offered after a crash: %+v", s)
		}
		if s.Status != state.Connected || s.WorkerPID == old {
			return fmt.Errorf("status %s pid %d", s.Status, s.WorkerPID)
		}
		if s.JID != jid {
			t.Fatalf("JID changed: %s -> %s", jid, s.JID)
		}
		return nil
	})
	if v := e.metric("wa_sidecar_worker_restarts_total", map[string]string{"org": "wk", "reason": "crash"}); v != 1 {
		t.Fatalf("worker_restarts_total{reason=crash} = %v", v)
	}
}

// 5. Supervisor kill -9: no worker survives; restarted, linked orgs come
// back connected without a QR and cooldowns stay in force.
func TestSupervisorKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.link("sk1", "573007915268")
	e.link("sk2", "573007915269")
	e.control(http.MethodPost, "/control/devices/573007915269/logout", nil, nil)
	e.waitStatus("sk2", state.LoggedOut, 15*time.Second)
	e.status("sk1")
	run := filepath.Join(e.stateDir, "run")
	before, err := os.ReadDir(run)
	if err != nil || len(before) != 1 {
		t.Fatalf("worker sockets in %s: %v (%v)", run, before, err)
	}

	e.killSupervisor()
	e.waitNoWorkers()

	e.startSupervisor()
	// The killed supervisor's worker socket is gone: boot empties run/.
	if _, err := os.Stat(filepath.Join(run, before[0].Name())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a stale socket survived the restart: %v", err)
	}
	s := e.status("sk1")
	if s.Status == state.QRRequired {
		t.Fatalf("linked org asks for a QR after restart: %+v", s)
	}
	e.waitStatus("sk1", state.Connected, 30*time.Second)
	assertCooldownRefusal(t, e, "sk2")
}

// 6. Seven orgs: never more than five live, starts start_gap apart, a stop lets a queued org in.
func TestSevenOrgs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	orgs := []string{"o1", "o2", "o3", "o4", "o5", "o6", "o7"}
	for _, o := range orgs {
		e.start(o)
	}
	count := func() (live, queued int) {
		for _, o := range orgs {
			switch s := e.status(o); s.Status {
			case state.Queued:
				queued++
			default:
				if s.Status.Live() {
					live++
				}
			}
		}
		return
	}
	e.eventually(30*time.Second, "five QR codes", func() error {
		qr := 0
		for _, o := range orgs {
			if e.status(o).Status == state.QRRequired {
				qr++
			}
		}
		if live, _ := count(); live > 5 {
			t.Fatalf("%d live workers", live)
		}
		if qr != 5 {
			return fmt.Errorf("%d with a QR", qr)
		}
		return nil
	})
	if live, queued := count(); live != 5 || queued != 2 {
		t.Fatalf("live %d queued %d", live, queued)
	}
	if v := e.metric("wa_sidecar_start_queue_depth", nil); v != 2 {
		t.Fatalf("start_queue_depth = %v", v)
	}
	if v := e.metric("wa_sidecar_workers_live", nil); v != 5 {
		t.Fatalf("workers_live = %v", v)
	}
	starts := e.logs.times(`"msg":"starting worker"`)
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 300*time.Millisecond {
			t.Fatalf("starts %d and %d only %s apart", i-1, i, gap)
		}
	}

	var stopped string
	for _, o := range orgs {
		if e.status(o).Status == state.QRRequired {
			stopped = o
			break
		}
	}
	if _, err := e.api.Stop(context.Background(), stopped); err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Second, "a queued org to get the slot", func() error {
		live, queued := count()
		if live != 5 || queued != 1 {
			return fmt.Errorf("live %d queued %d", live, queued)
		}
		return nil
	})
}

// 7. The seed-compatible endpoint archives and relinks.
func TestSeedClearEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.link("sc", "573007915270")
	resp, err := e.api.ClearCorruptedSession(context.Background(), "sc")
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Success {
		t.Fatalf("seed endpoint answered %+v", resp)
	}
	e.eventually(15*time.Second, "the archive", func() error {
		if got := e.archives("sc", "corrupted"); len(got) != 1 {
			return fmt.Errorf("archives %v", got)
		}
		return nil
	})
	e.waitStatus("sc", state.QRRequired, 30*time.Second)
	if v := e.metric("wa_sidecar_sessions_cleared_total", map[string]string{"org": "sc", "reason": "manual"}); v != 1 {
		t.Fatalf("sessions_cleared_total{manual} = %v", v)
	}
}

// A worker that stops answering (SIGSTOP: alive but frozen) is killed by the
// health check and replaced on the same auth.
func TestFrozenWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	jid := e.link("fz", "573007915271")
	old := e.status("fz").WorkerPID
	if err := syscall.Kill(old, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Second, "a fresh worker connected", func() error {
		s := e.status("fz")
		if s.Status != state.Connected || s.WorkerPID == old || s.JID != jid {
			return fmt.Errorf("status %s pid %d jid %s", s.Status, s.WorkerPID, s.JID)
		}
		return nil
	})
	e.eventually(10*time.Second, "the frozen worker to be killed", func() error {
		if alive(old) {
			return errors.New("still there")
		}
		return nil
	})
	if v := e.metric("wa_sidecar_worker_restarts_total", map[string]string{"org": "fz", "reason": "unhealthy"}); v != 1 {
		t.Fatalf("worker_restarts_total{reason=unhealthy} = %v", v)
	}
}

// 10. Pairing by phone code: pair-phone through the API, the code typed on
// the emulated phone, connected as that phone; the status shows the code
// only while it is pending.
func TestPairByPhoneCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	org, phone := "pc", "573007915272"
	e.start(org)
	e.waitStatus(org, state.QRRequired, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := e.api.PairPhone(ctx, org, phone)
	if err != nil {
		t.Fatalf("pair-phone: %v", err)
	}
	if len(code) != 9 || code[4] != '-' {
		t.Fatalf("pairing code %q is not of the form XXXX-XXXX", code)
	}
	if s := e.status(org); s.PairingCode != code || s.Status != state.QRRequired {
		t.Fatalf("status after pair-phone: %+v", s)
	}
	var resp struct{ JID string }
	e.control(http.MethodPost, "/control/pair-code", map[string]string{"phone": phone, "code": code}, &resp)
	s := e.waitStatus(org, state.Connected, 30*time.Second)
	if s.JID != resp.JID || !strings.HasPrefix(s.JID, phone+":") || s.QR != "" || s.PairingCode != "" {
		t.Fatalf("connected as %q (emulator linked %q) with QR %q and code %q", s.JID, resp.JID, s.QR, s.PairingCode)
	}
}

// 3d. Temporary ban: WhatsApp refuses the login with 402 and an expiry. The
// organization shows banned with that expiry as cooldown_until, has no
// worker, refuses a start with 409 until then, and afterwards comes back
// connected by itself on the same JID without a QR.
func TestTemporaryBan(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	org, phone := "bn", "573007915275"
	const banFor = 3 * time.Second
	jid := e.link(org, phone)
	pid := e.status(org).WorkerPID
	qrs := e.metric("wa_sidecar_qr_codes_total", map[string]string{"org": org})
	banned := time.Now()
	// The emulator drops the connection; the worker's automatic reconnect
	// is the login that meets the ban.
	e.control(http.MethodPost, "/control/devices/"+phone+"/ban",
		map[string]int{"seconds": int(banFor / time.Second), "code": 101}, nil)
	s := e.waitStatus(org, state.Banned, 15*time.Second)
	if s.CooldownUntil == nil || s.CooldownUntil.Before(banned.Add(banFor)) || s.CooldownUntil.After(time.Now().Add(banFor)) {
		t.Fatalf("banned at %s for %s, status shows cooldown_until %v", banned.UTC().Format(time.RFC3339Nano), banFor, s.CooldownUntil)
	}
	until := *s.CooldownUntil
	e.eventually(10*time.Second, "the banned worker to exit", func() error {
		if alive(pid) {
			return errors.New("still running")
		}
		return nil
	})
	if s := e.status(org); s.Status != state.Banned || s.WorkerPID != 0 {
		t.Fatalf("a worker is attached while banned: %+v", s)
	}
	_, err := e.api.Start(context.Background(), org)
	var ae *apiclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != "cooldown" || !strings.Contains(ae.Message, "ban") {
		t.Fatalf("start while banned: %v", err)
	}
	if ae.RetryAfter <= 0 || ae.RetryAfter > banFor+time.Second {
		t.Fatalf("Retry-After %s on the 409 during a %s ban", ae.RetryAfter, banFor)
	}
	// Nothing restarts until the ban ends (the margin leaves the
	// supervisor's own timer alone).
	e.throughout(until.Add(-300*time.Millisecond), "a worker started while banned", func() bool {
		s := e.status(org)
		return s.Status != state.Banned || s.WorkerPID != 0
	})
	e.eventually(30*time.Second, "connected again after the ban", func() error {
		s := e.status(org)
		if s.Status == state.QRRequired || s.QR != "" {
			t.Fatalf("a QR was offered after a ban: %+v", s)
		}
		if s.Status != state.Connected {
			return fmt.Errorf("status %s (last event %s)", s.Status, s.LastEvent)
		}
		if s.JID != jid || s.CooldownUntil != nil || s.WorkerPID == 0 || s.WorkerPID == pid {
			t.Fatalf("after the ban: %+v, want JID %s and a new worker", s, jid)
		}
		return nil
	})
	if time.Now().Before(until) {
		t.Fatalf("connected before the ban's expiry %s", until)
	}
	if got := e.metric("wa_sidecar_qr_codes_total", map[string]string{"org": org}); got != qrs {
		t.Fatalf("qr_codes_total went from %v to %v across the ban", qrs, got)
	}
}
