package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// workerSampler counts the supervisor's live worker processes every few
// milliseconds for as long as a test runs, so that a cap broken for a
// moment is seen, not only a cap broken at the end.
type workerSampler struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	max  int
	seen int
}

func (e *env) sampleWorkers() *workerSampler {
	s := &workerSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			n := 0
			if e.sup != nil && e.sup.Process != nil {
				n = len(childWorkers(e.sup.Process.Pid))
			}
			s.mu.Lock()
			s.max = max(s.max, n)
			s.seen++
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return s
}

// finish stops sampling and returns the most workers seen alive at once.
func (s *workerSampler) finish() int {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// childWorkers lists ppid's children that run wa-worker and are not zombies.
func childWorkers(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(wa-worker") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if p, _ := strconv.Atoi(f[1]); p == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// With max_live = 1, a start of another organization while the first one's
// worker is still launching, or is frozen and being stopped, must never
// run two worker processes: the slot is free only once the first process
// has been reaped.
func TestMaxLiveOneHoldsUnderStopsDuringLaunchAndFrozenWorkers(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{set: map[string]string{
		"max_live = 5": "max_live = 1", `start_gap = "300ms"`: `start_gap = "0s"`, `start_jitter = ["0s", "50ms"]`: `start_jitter = ["0s", "0s"]`,
	}})
	sampler := e.sampleWorkers()
	ctx := context.Background()
	for round := range 4 {
		a, b := fmt.Sprint("a", round), fmt.Sprint("b", round)
		e.start(a)
		// No wait: the stop lands while a's worker is spawning.
		if _, err := e.api.Stop(ctx, a); err != nil {
			t.Fatal(err)
		}
		e.start(b)
		e.waitStatus(b, state.QRRequired, 30*time.Second)
		if s := e.status(a); s.Status != state.Stopped || s.WorkerPID != 0 {
			t.Fatalf("round %d: %s after stop: %+v", round, a, s)
		}
		if _, err := e.api.Stop(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	// A frozen worker being stopped still holds the slot.
	e.start("frozen")
	pid := e.waitStatus("frozen", state.QRRequired, 30*time.Second).WorkerPID
	e.start("next")
	if s := e.status("next"); s.Status != state.Queued || s.WaitingFor != "max_live" {
		t.Fatalf("next: %s waiting for %q while the only slot is taken", s.Status, s.WaitingFor)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.Stop(ctx, "frozen"); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("next", state.QRRequired, 60*time.Second)
	if alive(pid) {
		t.Fatalf("next started while the frozen worker %d was alive", pid)
	}
	if got := sampler.finish(); got != 1 {
		t.Fatalf("%d worker processes alive at once with max_live = 1", got)
	}
}

// writeRegistry puts a registry.json of an earlier version into the state
// directory, with orgs (JSON objects) and bulk stopped organizations whose
// auth directories wait to be archived, as a host upgraded mid-cleanup has.
func writeRegistry(t *testing.T, e *env, bulk int, orgs ...string) {
	t.Helper()
	dir := filepath.Join(e.stateDir, "supervisor")
	for i := range bulk {
		id := fmt.Sprint("bulk", i)
		if err := os.MkdirAll(filepath.Join(e.stateDir, "auth_sessions", id), 0o700); err != nil {
			t.Fatal(err)
		}
		orgs = append(orgs, fmt.Sprintf(`{"id": %q, "wanted": false, "status": "stopped", "archive_pending": "corrupted", "bad_mac": {}, "added_at": "2025-01-01T00:00:00Z"}`, id))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	reg := `{"orgs": [` + strings.Join(orgs, ",\n") + `]}`
	if err := os.WriteFile(filepath.Join(dir, "registry.json"), []byte(reg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func loggedOutUntil(id string, until time.Time) string {
	return fmt.Sprintf(`{"id": %q, "wanted": false, "status": "logged_out", "status_reason": "device_removed",
 "cooldown_until": %q, "cooldown_reason": "logout", "bad_mac": {"count": 0, "trips": [], "total_trips": 2}, "added_at": "2025-01-01T00:00:00Z"}`,
		id, until.Format(time.RFC3339))
}

// A start that races the boot must meet the saved cooldown: the API answers
// 503 until the state is loaded, then 409. 1,500 auth directories waiting to
// be archived keep a boot busy; they are archived after the API is ready.
func TestStartRacingTheBootKeepsTheCooldown(t *testing.T) {
	t.Parallel()
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	e := newEnvWith(t, options{noStart: true, before: func(e *env) {
		writeRegistry(t, e, 1500, loggedOutUntil("rb", until))
	}})
	var (
		mu      sync.Mutex
		answers = map[string]int{}
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := e.api.Start(ctx, "rb")
			cancel()
			var ae *apiclient.APIError
			key := "no answer"
			switch {
			case err == nil:
				key = "accepted"
			case errors.As(err, &ae):
				key = fmt.Sprintf("%d %s", ae.Status, ae.Code)
			}
			mu.Lock()
			answers[key]++
			mu.Unlock()
		}
	}()
	e.startSupervisor()
	e.eventually(60*time.Second, "answers after the boot", func() error {
		mu.Lock()
		defer mu.Unlock()
		if answers["409 cooldown"] < 20 && answers["accepted"] == 0 {
			return fmt.Errorf("answers so far %v", answers)
		}
		return nil
	})
	close(stop)
	<-done
	t.Logf("answers: %v", answers)
	for key := range answers {
		if key != "409 cooldown" && key != "503 booting" && key != "no answer" {
			t.Fatalf("a start racing the boot was answered %q: %v", key, answers)
		}
	}
	if s := e.status("rb"); s.Status != state.LoggedOut || s.CooldownUntil == nil || !s.CooldownUntil.Equal(until) {
		t.Fatalf("after the boot: %+v, cooldown until %s", s, until)
	}
	// The runners finish the pending archives after the API is ready.
	e.eventually(60*time.Second, "the pending archives to start", func() error {
		if !e.logs.contains(`"msg":"auth directory archived","org":"bulk`) {
			return errors.New("none archived yet")
		}
		return nil
	})
}

// A client that "fixes" a 409 by deleting and starting again meets the
// same hold.
func TestDeleteDuringAHoldKeepsIt(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{set: map[string]string{`cooldown = "4s"`: `cooldown = "2m"`}})
	phone := "573007915281"
	e.link("dh", phone)
	e.control(http.MethodPost, "/control/devices/"+phone+"/logout", nil, nil)
	until := e.waitStatus("dh", state.LoggedOut, 15*time.Second).CooldownUntil
	assertCooldownRefusal(t, e, "dh")
	ctx := context.Background()
	if err := e.api.Delete(ctx, "dh"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.Status(ctx, "dh"); !apiclient.IsCode(err, "unknown_org") {
		t.Fatalf("status after delete: %v", err)
	}
	_, err := e.api.Start(ctx, "dh")
	var ae *apiclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != "cooldown" ||
		!strings.Contains(ae.Message, until.UTC().Format(time.RFC3339)) {
		t.Fatalf("start after delete during the cooldown: %v", err)
	}
	if _, err := e.api.Status(ctx, "dh"); !apiclient.IsCode(err, "unknown_org") {
		t.Fatalf("the refused start registered the org: %v", err)
	}
	// The tombstone survives a restart too.
	e.stop()
	e.startSupervisor()
	if _, err := e.api.Start(ctx, "dh"); !apiclient.IsCode(err, "cooldown") {
		t.Fatalf("start after a restart: %v", err)
	}
}

func TestSecondSupervisorIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.start("2")
	cmd := exec.Command(filepath.Join(binDir, "wa-supervisor"), "serve", "-config", e.cfgPath)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second supervisor: %v\n%s", err, out)
	}
	want := fmt.Sprintf("state_dir %s is in use by another wa-supervisor (PID %d)", e.stateDir, e.sup.Process.Pid)
	if !strings.Contains(string(out), want) || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("second supervisor said %q, want one line with %q", out, want)
	}
	if s := e.status("2"); s.Status == "" {
		t.Fatal("the first supervisor stopped answering")
	}
}

// limitWrites makes every file write of pid beyond a few bytes fail with
// EFBIG, as a full disk would (RLIMIT_FSIZE; Go ignores SIGXFSZ).
func limitWrites(t *testing.T, pid int) {
	t.Helper()
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 1, Max: unix.RLIM_INFINITY}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
}

// A LOGOUT whose commit fails is never shown, fails /readyz, and after a
// crash and restart the organization is logged_out with a cooldown, not
// relinking by itself; a start whose commit fails is not applied either.
func TestFailedStateWritesNeverReleaseAHold(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{set: map[string]string{`cooldown = "4s"`: `cooldown = "3s"`}})
	phone := "573007915282"
	e.link("fw", phone)
	offered := e.emu.Registrations()
	limitWrites(t, e.sup.Process.Pid)
	e.control(http.MethodPost, "/control/devices/"+phone+"/logout", nil, nil)
	e.eventually(15*time.Second, "the supervisor to act on the LOGOUT", func() error {
		if e.metric("wa_sidecar_persist_errors_total", nil) > 0 || e.status("fw").Status == state.LoggedOut {
			return nil
		}
		return errors.New("not yet")
	})
	shown, readyErr := e.status("fw"), e.readyz()
	e.killSupervisor()
	e.waitNoWorkers()
	e.startSupervisor()
	s := e.waitStatus("fw", state.LoggedOut, 30*time.Second)
	if s.CooldownUntil == nil {
		t.Fatalf("logged out without a cooldown: %+v", s)
	}
	if v := e.metric("wa_sidecar_qr_codes_total", map[string]string{"org": "fw"}); v != 0 {
		t.Fatalf("a QR was offered after the restart (%v): the hold was bypassed", v)
	}
	// The metric only counts QRs the supervisor took in; a worker that
	// registered anyway (issue 15) shows on the server's side.
	if n := e.emu.Registrations(); n != offered {
		t.Fatalf("the restored worker opened %d registration(s): the hold was bypassed", n-offered)
	}
	if shown.Status != state.Connected || readyErr == nil {
		t.Fatalf("while the commit failed the API showed %s and /readyz said %v", shown.Status, readyErr)
	}
	assertCooldownRefusal(t, e, "fw")

	// Once the cooldown is over, a start whose commit fails is not applied.
	e.eventually(10*time.Second, "the cooldown to end", func() error {
		if s := e.status("fw"); s.CooldownUntil != nil {
			return errors.New("still in cooldown")
		}
		return nil
	})
	limitWrites(t, e.sup.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := e.api.Start(ctx, "fw"); !apiclient.IsCode(err, "persist_failed") {
		t.Fatalf("start while writes fail: %v", err)
	}
	if s := e.status("fw"); s.Status != state.LoggedOut || s.WorkerPID != 0 {
		t.Fatalf("an uncommitted start acted: %+v", s)
	}
	e.killSupervisor()
	e.startSupervisor()
	if s := e.status("fw"); s.Status != state.LoggedOut || s.WorkerPID != 0 {
		t.Fatalf("after the restart: %+v", s)
	}
}

// An auth directory that cannot be archived keeps the organization from
// relinking on it; the archive is retried and the relink follows it.
func TestFailedArchiveBlocksTheRelink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.link("fa", "573007915283")
	authRoot := filepath.Join(e.stateDir, "auth_sessions")
	// The immutable flag stops even root from renaming inside the directory.
	if out, err := exec.Command("chattr", "+i", authRoot).CombinedOutput(); err != nil {
		t.Skipf("chattr +i not supported here (%v: %s): cannot make an archive fail", err, out)
	}
	unfreeze := func() { exec.Command("chattr", "-i", authRoot).Run() }
	t.Cleanup(unfreeze)
	if _, err := e.api.Clear(context.Background(), "fa"); err != nil {
		t.Fatal(err)
	}
	starts := func() int { return len(e.logs.times(`"msg":"starting worker","org":"fa"`)) }
	e.eventually(15*time.Second, "two failed archive attempts, or a relink", func() error {
		if n := len(e.logs.times(`"msg":"archiving the auth directory failed`)); n < 2 && starts() == 1 {
			return fmt.Errorf("%d failures so far", n)
		}
		return nil
	})
	if n := starts(); n != 1 {
		t.Fatalf("%d worker starts: a worker started on the unarchived store", n)
	}
	if s := e.status("fa"); s.WorkerPID != 0 || s.Status == state.QRRequired || s.LastError == "" {
		t.Fatalf("while the archive fails: %+v", s)
	}
	unfreeze()
	qr := e.waitStatus("fa", state.QRRequired, 30*time.Second)
	if qr.JID != "" || len(e.archives("fa", "corrupted")) != 1 {
		t.Fatalf("after the archive: %+v, archives %v", qr, e.archives("fa", "corrupted"))
	}
}

// A registry.json of an earlier version is imported once at boot: its
// holds stay in force, what was wanted runs, and the file is moved aside.
func TestRegistryJSONIsImported(t *testing.T) {
	t.Parallel()
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	e := newEnvWith(t, options{before: func(e *env) {
		dir := filepath.Join(e.stateDir, "supervisor")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		reg := fmt.Sprintf(`{"orgs": [
 {"id": "old-lo", "wanted": false, "status": "logged_out", "status_reason": "device_removed", "linked": false,
  "cooldown_until": %q, "cooldown_reason": "logout", "bad_mac": {"count": 0, "trips": [], "total_trips": 2}, "added_at": "2025-01-01T00:00:00Z"},
 {"id": "old-run", "wanted": true, "status": "", "linked": false, "bad_mac": {}, "added_at": "2025-01-01T00:00:00Z"}
]}`, until.Format(time.RFC3339))
		if err := os.WriteFile(filepath.Join(dir, "registry.json"), []byte(reg), 0o600); err != nil {
			t.Fatal(err)
		}
	}})
	s := e.status("old-lo")
	if s.Status != state.LoggedOut || s.CooldownUntil == nil || !s.CooldownUntil.Equal(until) || s.BadMAC.Trips != 2 {
		t.Fatalf("imported logged-out org: %+v", s)
	}
	assertCooldownRefusal(t, e, "old-lo")
	e.waitStatus("old-run", state.QRRequired, 30*time.Second)
	if _, err := os.Stat(filepath.Join(e.stateDir, "supervisor", "registry.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("registry.json not moved aside: %v", err)
	}
	if !e.logs.contains(`"msg":"imported the registry of an earlier version into state.db"`) {
		t.Fatal("the import was not logged")
	}
	// A restart does not import it again.
	e.stop()
	e.startSupervisor()
	if e.logs.contains(`imported the registry`) {
		t.Fatal("imported twice")
	}
}
