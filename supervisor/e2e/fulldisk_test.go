package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// mountTmpfs mounts a tmpfs of size at dir for the test, or skips the test
// when this machine refuses the mount (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("needs a real tmpfs and this machine refused the mount: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			// Something still holds a file there: detach it, so the
			// temporary directory can go.
			t.Logf("umount %s: %v: %s; detaching it", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
}

// fill writes into dir until its file system is full and returns the
// filler's path; removing it frees the space again.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create the filler: %v", err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s stopped on %v, want ENOSPC", dir, err)
	}
	return path
}

// Issue 15, defect 1, on a real full disk: the supervisor's state lives on
// a tmpfs that is full when WhatsApp logs the device out, so the LOGOUT's
// commit fails; the supervisor is killed -9, space is freed, and it
// restarts from the state before the LOGOUT. The worker's store lost the
// device with the LOGOUT. The restore must never open a registration (the
// server would offer a QR seconds after the LOGOUT): the worker reports
// device_missing and the supervisor holds the relink for the cooldown,
// counted from when it learned of it.
//
// Only state_dir/supervisor is on the tmpfs, as in the report the worker's
// delete of its device went through while the supervisor's commit failed;
// with both on one full tmpfs, whether SQLite's delete needs a new page is
// up to the size of the worker's WAL, and the test would be a coin toss.
func TestLostLogoutOnAFullDiskHoldsTheRestore(t *testing.T) {
	t.Parallel()
	const cooldown = 10 * time.Second
	var supDir string
	e := newEnvWith(t, options{
		set: map[string]string{`cooldown = "4s"`: fmt.Sprintf("cooldown = %q", cooldown.String())},
		before: func(e *env) {
			supDir = filepath.Join(e.stateDir, "supervisor")
			mountTmpfs(t, supDir, "8m")
		},
	})
	phone := "573007915291"
	e.link("fd", phone)
	offered := e.emu.Registrations() // the link's own
	filler := fill(t, supDir)
	if n := e.metric("wa_sidecar_persist_errors_total", nil); n != 0 {
		t.Fatalf("%v failed commits before the LOGOUT", n)
	}

	e.control(http.MethodPost, "/control/devices/"+phone+"/logout", nil, nil)
	e.eventually(15*time.Second, "the LOGOUT's commit to fail on the full disk", func() error {
		if e.metric("wa_sidecar_persist_errors_total", nil) > 0 {
			return nil
		}
		return fmt.Errorf("no failed commit; status %s", e.status("fd").Status)
	})
	if s := e.status("fd"); s.Status != state.Connected {
		t.Fatalf("an uncommitted LOGOUT was shown: %+v", s)
	}
	// SQLITE_FULL: SQLite's own words for the ENOSPC under it.
	if !e.logs.contains("database or disk is full") {
		t.Fatalf("the commit failed, but not for a full disk:\n%s", e.logs.String())
	}
	e.killSupervisor()
	e.waitNoWorkers()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	restartedAt := time.Now()
	e.startSupervisor()
	// Sampled until the hold is known and then through it: no registration
	// on the emulator, no QR, and no worker once the waiting one is closed.
	check := func(when string) state.Snapshot {
		t.Helper()
		if n := e.emu.Registrations(); n != offered {
			t.Fatalf("%s: the emulator opened %d registration(s) after the restart: a relink seconds after the LOGOUT", when, n-offered)
		}
		s := e.status("fd")
		if s.Status == state.QRRequired || s.QRCode != "" {
			t.Fatalf("%s: a QR on offer: %+v", when, s)
		}
		return s
	}
	var held state.Snapshot
	e.eventually(30*time.Second, "the restore to find the device missing", func() error {
		held = check("restoring")
		if held.Status != state.LoggedOut {
			return fmt.Errorf("status %s", held.Status)
		}
		return nil
	})
	learnedBy := time.Now()
	if held.LastEvent != "device_missing" || held.CooldownUntil == nil {
		t.Fatalf("after the restore: %+v, want logged_out by device_missing with a cooldown", held)
	}
	if from := held.CooldownUntil.Add(-cooldown); from.Before(restartedAt) || from.After(learnedBy) {
		t.Fatalf("cooldown counted from %v, want from when the restarted supervisor learned of it (between %v and %v)",
			from, restartedAt, learnedBy)
	}
	assertCooldownRefusal(t, e, "fd")
	for time.Now().Before(*held.CooldownUntil) {
		s := check("during the hold")
		if s.Status != state.LoggedOut {
			t.Fatalf("during the hold: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := e.metric("wa_sidecar_qr_codes_total", map[string]string{"org": "fd"}); v != 0 {
		t.Fatalf("%v QR codes offered", v)
	}
	if got := e.archives("fd", "loggedout"); len(got) != 1 {
		t.Fatalf("loggedout archives %v, want the emptied store moved aside", got)
	}
	// After the hold, an operator's start links anew.
	e.start("fd")
	e.waitStatus("fd", state.QRRequired, 30*time.Second)
}
