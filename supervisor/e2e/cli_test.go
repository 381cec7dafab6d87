package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The operator CLI against a real daemon and real workers: a start prints
// one line with the next command, a worker that cannot reach WhatsApp
// shows why in the status table, a broadcast names a number given twice
// and, on Ctrl-C, says that the job goes on; cancel ends it; a refusal
// names a CLI command, not an HTTP route.
func TestCLIExplainsItself(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	cli := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(filepath.Join(binDir, "wa-supervisor"), append(args, "-config", e.cfgPath)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("wa-supervisor %v: %v", args, err)
		}
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}

	// A proxy nobody listens on: every start of the worker fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	out, errs, code := cli("socks5://"+dead+"\n", "start", "-proxy", "-", "cli-bad")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "cli-bad ") || !strings.Contains(out, "'wa-supervisor qr cli-bad'") {
		t.Fatalf("start: exit %d, stdout %q, stderr %q; want one line naming the qr command", code, out, errs)
	}
	ctx := context.Background()
	e.eventually(60*time.Second, "a failed start", func() error {
		s, err := e.api.Status(ctx, "cli-bad")
		if err != nil || s.RetryCount == 0 || s.LastError == "" {
			return fmt.Errorf("%+v %v", s, err)
		}
		return nil
	})
	out, errs, code = cli("", "status", "cli-bad")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	reason := regexp.MustCompile(`^cli-bad .* failed (once|\d+ times): \S`)
	if code != 0 || len(lines) != 2 || !strings.HasSuffix(lines[0], " REASON") || !reason.MatchString(lines[1]) {
		t.Fatalf("status: exit %d, stderr %q, want the reason in the table:\n%s", code, errs, out)
	}

	// Two spellings of one number; the organization never connects, so the
	// job waits, and Ctrl-C leaves it waiting.
	cmd := exec.Command(filepath.Join(binDir, "wa-supervisor"), "broadcast", "cli-bad", "-", "hi", "-config", e.cfgPath)
	cmd.Stdin = strings.NewReader("573001290001\n+57 300 129 0001\n")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	var job string
	for sc.Scan() {
		if m := regexp.MustCompile(`^broadcast (bc_\S+): 1 recipients$`).FindStringSubmatch(sc.Text()); m != nil {
			job = m[1]
		}
		if strings.HasPrefix(sc.Text(), "sending:") || strings.HasPrefix(sc.Text(), "queued:") {
			break
		}
	}
	if job == "" {
		t.Fatalf("broadcast printed no job of 1 recipient; stderr %q", errb.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	wantErr := fmt.Sprintf("-: line 2: +57 300 129 0001 is 573001290001 of line 1 (+573001290001); it is sent once\n"+
		"stopped following %s; the broadcast goes on ('wa-supervisor cancel cli-bad %[1]s' stops it)\n", job)
	if cmd.ProcessState.ExitCode() != 130 || errb.String() != wantErr {
		t.Fatalf("after Ctrl-C: %v, stderr\n%s\nwant\n%s", err, errb.String(), wantErr)
	}
	if b, err := e.api.Broadcast(ctx, "cli-bad", job); err != nil || b.Status == "cancelled" || b.Pending != 1 {
		t.Fatalf("the job after Ctrl-C: %+v %v; want it still pending", b, err)
	}
	out, errs, code = cli("", "cancel", "cli-bad", job)
	if want := "broadcast " + job + " cancelled: sent 0/1, failed 1, pending 0\n"; code != 0 || out != want {
		t.Fatalf("cancel: exit %d, stdout %q, stderr %q; want %q", code, out, errs, want)
	}

	out, errs, code = cli("", "stop", "cli-bad")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "cli-bad ") {
		t.Fatalf("stop: exit %d, stdout %q, stderr %q; want one line", code, out, errs)
	}
	_, errs, code = cli("", "status", "cli-nope")
	if code != 1 || !strings.Contains(errs, "run 'wa-supervisor start cli-nope' to register it") || strings.Contains(errs, "POST") {
		t.Fatalf("an unknown org: exit %d, stderr %q", code, errs)
	}
}
