package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBadInputGetsOneClearError(t *testing.T) {
	dir := t.TempDir()
	badCfg := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(badCfg, []byte("[workers]\nstart_gap = \"soon\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknownKey := filepath.Join(dir, "unknown.toml")
	if err := os.WriteFile(unknownKey, []byte("[api]\nlisen = \"127.0.0.1:1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"qr"}, 2, "wrong number of arguments"},
		{[]string{"check", "2"}, 2, "wrong number of arguments"},
		{[]string{"status", "../etc"}, 1, `organization id "../etc" is invalid`},
		{[]string{"start", "a/b", "-config", badCfg}, 1, "invalid"},
		{[]string{"serve", "-config", badCfg}, 1, "workers.start_gap"},
		{[]string{"serve", "-config", unknownKey}, 1, "unknown key api.lisen"},
		{[]string{"serve", "-config", filepath.Join(dir, "missing.toml")}, 1, "missing.toml"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"status", "2", "-config", badCfg}, 1, "workers.start_gap"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := dispatch(c.args, strings.NewReader(""), &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errb.String(), c.code, c.want)
		}
		if strings.Contains(errb.String(), "goroutine ") {
			t.Errorf("%v: crashed: %s", c.args, errb.String())
		}
	}
}

func TestServeRefusesOpenAPIWithoutKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	worker := filepath.Join(dir, "wa-worker")
	if err := os.WriteFile(worker, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := "state_dir = \"" + dir + "/state\"\nworker_binary = \"" + worker + "\"\n[api]\nlisten = \"0.0.0.0:0\"\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WA_SIDECAR_API_KEY", "")
	var errb bytes.Buffer
	if code := dispatch([]string{"serve", "-config", cfg}, strings.NewReader(""), &bytes.Buffer{}, &errb); code != 1 || !strings.Contains(errb.String(), "api_key_file") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// A body sent a byte a second, or an answer never read, must not hold a
// connection forever: every phase of a request has a bound, and the write
// bound leaves room for the slowest answer (a logout's 30 s).
func TestServersBoundEveryPhase(t *testing.T) {
	srv := newServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.IdleTimeout <= 0 || srv.WriteTimeout < 40*time.Second {
		t.Fatalf("timeouts: header %s, read %s, write %s, idle %s",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
}

// Boot removes the sockets a killed supervisor left in state_dir/run and
// nothing else, and refuses a state_dir too long for a socket path.
func TestSocketDir(t *testing.T) {
	state := t.TempDir()
	run := filepath.Join(state, "run")
	// As an older version may have left it: readable by every user.
	os.MkdirAll(run, 0o755)
	os.Chmod(run, 0o755)
	ln, err := net.Listen("unix", filepath.Join(run, "plugin123"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	os.WriteFile(filepath.Join(run, "keep"), []byte("x"), 0o600)
	dir, err := socketDirOf(state)
	if err != nil || dir != run {
		t.Fatalf("socketDirOf: %q %v", dir, err)
	}
	entries, _ := os.ReadDir(run)
	if len(entries) != 1 || entries[0].Name() != "keep" {
		t.Fatalf("left %v", entries)
	}
	if fi, err := os.Stat(run); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("run: %v %v, want mode 0700", fi, err)
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
	if _, err := socketDirOf(long); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("a long state_dir: %v", err)
	}
	file := t.TempDir()
	os.WriteFile(filepath.Join(file, "run"), nil, 0o600)
	if _, err := socketDirOf(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a file at run: %v", err)
	}
}
