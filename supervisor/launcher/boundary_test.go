package launcher

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/logline"
)

// The worker parses what WhatsApp sends: it must not see the API key, the
// systemd notify socket or anything else of the supervisor's environment.
func TestWorkerGetsAnExplicitEnvironment(t *testing.T) {
	t.Setenv("WA_SIDECAR_API_KEY", "s3cret-api-key")
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("HTTPS_PROXY", "http://proxy.example:3128")
	t.Setenv("GOMEMLIMIT", "1GiB")
	t.Setenv("GOMAXPROCS", "4")
	l := newLauncher(t, workerBin, io.Discard)
	l.memoryLimit = "12MiB" // workers.memory_limit
	p := launch(t, l, "env")
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.PID()))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, leaked := range []string{"WA_SIDECAR_API_KEY", "NOTIFY_SOCKET", "HTTPS_PROXY", "HOME"} {
		if _, ok := env[leaked]; ok {
			t.Errorf("the worker sees %s", leaked)
		}
	}
	if strings.Contains(string(raw), "s3cret-api-key") {
		t.Error("the API key is in the worker's environment")
	}
	if env["WA_SIDECAR_ORG"] != "env" || env["TMPDIR"] != l.socketDir || env["PATH"] == "" || env["PLUGIN_CLIENT_CERT"] == "" ||
		env["GOMEMLIMIT"] != "12MiB" || env["GOMAXPROCS"] != "1" {
		t.Errorf("environment %v", env)
	}
}

// The worker's socket lives under the socket directory, and only a client
// holding the certificate of this launch may call it.
func TestWorkerSocketIsPrivate(t *testing.T) {
	l := newLauncher(t, workerBin, io.Discard)
	p := launch(t, l, "mtls")
	entries, err := os.ReadDir(l.socketDir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("socket dir %s holds %v (%v)", l.socketDir, entries, err)
	}
	sock := filepath.Join(l.socketDir, entries[0].Name())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resp, err := p.Ping(ctx); err != nil || int(resp.Pid) != p.PID() {
		t.Fatalf("the supervisor's own client: %v %v", resp, err)
	}
	for name, creds := range map[string]credentials.TransportCredentials{
		"plain":                   insecure.NewCredentials(),
		"TLS without client cert": credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}),
	} {
		conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		_, err = pb.NewWorkerClient(conn).Ping(ctx, &pb.PingRequest{})
		conn.Close()
		if err == nil {
			t.Fatalf("a %s client called the worker", name)
		}
	}
	p.Kill()
	if entries, _ := os.ReadDir(l.socketDir); len(entries) != 0 {
		t.Errorf("socket left after Kill: %v", entries)
	}
}

// Two real workers logging at once into one stream: every line is one
// JSON record in the supervisor's shape, tagged with its org, and go-plugin
// prints nothing twice.
func TestWorkerLinesStayWhole(t *testing.T) {
	var buf bytes.Buffer
	sink := logline.NewSink(&buf)
	l := newLauncher(t, workerBin, sink)
	var wg sync.WaitGroup
	for _, org := range []string{"w1", "w2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := launch(t, l, org)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// A dead emulator: the session logs its way to an error.
			_, _ = p.Start(ctx, &pb.StartRequest{OrganizationId: org, AuthDir: filepath.Join(t.TempDir(), org),
				LogLevel: "debug", EmulatorUrl: "http://127.0.0.1:1"})
			p.Kill()
		}()
	}
	wg.Wait()
	sink.Write(nil)
	exited := map[string]int{}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 6 {
		t.Fatalf("only %d lines:\n%s", len(lines), buf.String())
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not one JSON record: %q", line)
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil || strings.Contains(line, `"@level"`) {
			t.Fatalf("not the supervisor's shape: %s", line)
		}
		org, _ := rec["org"].(string)
		if org != "w1" && org != "w2" {
			t.Fatalf("no org: %s", line)
		}
		if rec["msg"] == "plugin process exited" {
			exited[org]++
		}
	}
	if exited["w1"] != 1 || exited["w2"] != 1 {
		t.Fatalf("go-plugin's exit line per org: %v\n%s", exited, buf.String())
	}
}

// A worker's stderr is untrusted: a line go-plugin's own parser would choke
// on (a non-string "@message" panicked it, in the supervisor) is relayed as
// a record, once, and a forged org is kept apart from the real one.
func TestHostileWorkerLinesAreRecords(t *testing.T) {
	script := filepath.Join(t.TempDir(), "wa-worker")
	body := fmt.Sprintf("#!/bin/sh\necho '{\"@message\":1,\"@level\":[]}' >&2\n"+
		"echo '{\"time\":\"2026-12-02T00:00:00Z\",\"level\":\"ERROR\",\"msg\":\"forged\",\"org\":\"victim\"}' >&2\nexec %q \"$@\"\n", workerBin)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sink := logline.NewSink(&buf)
	p := launch(t, newLauncher(t, script, sink), "hostile")
	p.Kill()
	sink.Write(nil)
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a record: %q", line)
		}
		if rec["org"] != "hostile" {
			t.Fatalf("org %v in %s", rec["org"], line)
		}
		msgs = append(msgs, fmt.Sprint(rec["msg"]))
	}
	if strings.Count(strings.Join(msgs, "|"), "forged") != 1 || !strings.Contains(strings.Join(msgs, "|"), "1") {
		t.Fatalf("messages %q", msgs)
	}
}

// A worker that leaves a child holding its stderr cannot make Kill wait
// forever: the slot it holds is freed only once Kill returns.
func TestKillReturnsWhenAChildHoldsStderr(t *testing.T) {
	script := filepath.Join(t.TempDir(), "wa-worker")
	body := fmt.Sprintf("#!/bin/sh\nsleep 600 </dev/null >/dev/null &\nexec %q \"$@\"\n", workerBin)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	p := launch(t, newLauncher(t, script, io.Discard), "stubborn")
	done := make(chan struct{})
	go func() { p.Kill(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Kill still waits 30 s later")
	}
	if st := procState(p.PID()); st != "" && st != "Z" {
		t.Fatalf("worker state %q after Kill", st)
	}
}
