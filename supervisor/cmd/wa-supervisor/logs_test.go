package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// logs prints the last -n records whose org is the organization, from the
// file the daemon's standard error went to; other organizations' records,
// records without one and lines that are not JSON are left out.
func TestLogsFromFile(t *testing.T) {
	var log strings.Builder
	log.WriteString("wa-supervisor starting\n")
	for i := range 6 {
		fmt.Fprintf(&log, `{"time":"t%d","level":"INFO","msg":"worker line","org":"2","n":%d}`+"\n", i, i)
		fmt.Fprintf(&log, `{"time":"t%d","level":"INFO","msg":"other","org":"20"}`+"\n", i)
		fmt.Fprintf(&log, `{"time":"t%d","level":"INFO","msg":"fleet"}`+"\n", i)
	}
	path := filepath.Join(t.TempDir(), "sup.log")
	if err := os.WriteFile(path, []byte(log.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := dispatch(args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("logs", "-n", "2", "-log", path, "2")
	want := `{"time":"t4","level":"INFO","msg":"worker line","org":"2","n":4}` + "\n" +
		`{"time":"t5","level":"INFO","msg":"worker line","org":"2","n":5}` + "\n"
	if code != 0 || out != want {
		t.Errorf("logs -n 2: exit %d, stdout\n%s\nwant\n%s\nstderr %s", code, out, want, errs)
	}
	if code, out, _ := run("logs", "-log", path, "2"); code != 0 || strings.Count(out, "\n") != 6 {
		t.Errorf("logs (default -n 50): exit %d, %d lines, want the 6 there are", code, strings.Count(out, "\n"))
	}
	if code, _, errs := run("logs", "-log", path, "3"); code != 1 || !strings.Contains(errs, "holds 18 log records, none about organization 3") {
		t.Errorf("an org with no records: exit %d, %q", code, errs)
	}
	if code, _, errs := run("logs", "-log", filepath.Join(t.TempDir(), "nope.log"), "2"); code != 1 || !strings.Contains(errs, "nope.log") {
		t.Errorf("a missing file: exit %d, %q", code, errs)
	}
	if code, _, errs := run("logs", "-n", "0", "-log", path, "2"); code != 2 || !strings.Contains(errs, "-n 0") {
		t.Errorf("-n 0: exit %d, %q", code, errs)
	}
}

// Without -log and without journald, logs says where the log is and how
// to point at it, rather than printing nothing.
func TestLogsSaysWhenNoSourceIsFound(t *testing.T) {
	_, cfg := fakeConfig(t)
	t.Setenv("PATH", t.TempDir()) // no journalctl
	var out, errb bytes.Buffer
	code := dispatch([]string{"logs", "2", "-config", cfg}, strings.NewReader(""), &out, &errb)
	if code != 1 || out.Len() != 0 || !strings.Contains(errb.String(), "no log source found") || !strings.Contains(errb.String(), "-log FILE") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
