package session

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/worker/badmac"
)

func TestCheckAuthDir(t *testing.T) {
	ok := []string{"/var/lib/wa-sidecar/auth_sessions/2", "var/auth_sessions/2", "auth"}
	bad := []string{"", "/var/lib/../etc", "var/auth_sessions/2/", "../2", "..", "/tmp/a?b", "./var/2"}
	for _, d := range ok {
		if err := checkAuthDir(d); err != nil {
			t.Errorf("checkAuthDir(%q) = %v, want nil", d, err)
		}
	}
	for _, d := range bad {
		if err := checkAuthDir(d); err == nil {
			t.Errorf("checkAuthDir(%q) = nil, want an error", d)
		}
	}
}

func TestParseStatm(t *testing.T) {
	got, err := parseStatm("52341 3012 1234 456 0 7890 0\n", 4096)
	if err != nil || got != 3012*4096 {
		t.Fatalf("got %d, %v; want %d", got, err, 3012*4096)
	}
	if _, err := parseStatm("52341", 4096); err == nil {
		t.Fatal("short statm parsed")
	}
}

func newTestSession(t *testing.T) *Session {
	return New(Options{Log: testLog(t), Detector: badmac.New()})
}

func TestStartRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	// Each error names the field that is wrong.
	cases := map[string]*pb.StartRequest{
		"organization id": {OrganizationId: "../etc", AuthDir: filepath.Join(dir, "x")},
		"auth_dir":        {OrganizationId: "2", AuthDir: dir + "/x/../y"},
		"log_level":       {OrganizationId: "2", AuthDir: filepath.Join(dir, "2"), LogLevel: "chatty"},
		"fingerprint":     {OrganizationId: "2", AuthDir: filepath.Join(dir, "2"), Fingerprint: "Safari/Linux/6.1.0"},
		"proxy":           {OrganizationId: "2", AuthDir: filepath.Join(dir, "2"), Proxy: "ftp://alice:s3cret@h:21"},
		"sandbox":         {OrganizationId: "2", AuthDir: filepath.Join(dir, "2"), Sandbox: "strict"},
	}
	for field, req := range cases {
		if _, err := newTestSession(t).Start(context.Background(), req); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Start(%v) = %v, want an error naming %s", req, err, field)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("rejected starts created %d entries in the state dir", len(entries))
	}
}

func TestRPCsBeforeStart(t *testing.T) {
	s := newTestSession(t)
	ctx := context.Background()
	if _, err := s.PairPhone(ctx, "573007915262"); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Errorf("PairPhone before start: %v", err)
	}
	if _, err := s.PairPhone(ctx, "+57 300"); err == nil || !strings.Contains(err.Error(), "digits only") {
		t.Errorf("PairPhone with a bad number: %v", err)
	}
	if _, err := s.SendText(ctx, &pb.SendTextRequest{To: "573001112222", Text: "hi"}); err == nil {
		t.Error("SendText before start succeeded")
	}
	if _, err := s.SendText(ctx, &pb.SendTextRequest{To: "57300abc", Text: "hi"}); err == nil || !strings.Contains(err.Error(), "digits only") {
		t.Errorf("SendText with a bad number: %v", err)
	}
	if err := s.Logout(ctx); err == nil {
		t.Error("Logout before start succeeded")
	}
	p, err := s.Ping(ctx)
	if err != nil || p.Pid != int32(os.Getpid()) || p.RssBytes <= 0 || p.Connected {
		t.Errorf("Ping = %v, %v", p, err)
	}
}

func TestStopEndsEventStream(t *testing.T) {
	s := newTestSession(t)
	s.publish(&pb.Event{AtUnixMs: 1})
	done := make(chan error, 1)
	var got int
	go func() { done <- s.Events(context.Background(), func(*pb.Event) error { got++; return nil }) }()
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || got != 1 {
		t.Fatalf("Events = %v after %d events, want nil after 1", err, got)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := s.Start(context.Background(), &pb.StartRequest{Sandbox: "off", OrganizationId: "2", AuthDir: filepath.Join(t.TempDir(), "2")}); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
}

// TestLogLinesParseAsHclog checks the shape go-plugin's host parser needs
// (go-plugin v1.8.0 log_entry.go parseJSON).
// Worker lines must share the supervisor's shape and must not carry
// hclog's @level, which would make go-plugin print them a second time.
func TestLogLinesMatchTheSupervisors(t *testing.T) {
	var buf bytes.Buffer
	h := NewLogHandler(&buf, slog.LevelInfo)
	log := slog.New(h).With("component", "x")
	log.Info("before org")
	h.SetOrg("68e3f605f2d61bb5556b7b20")
	log.Warn("after org", "n", 1)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines:\n%s", len(lines), buf.String())
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"])); err != nil {
			t.Errorf("line %d: time: %v", i, err)
		}
		if m["msg"] == nil || m["component"] != "x" || m["@level"] != nil {
			t.Errorf("line %d: not the supervisor's shape: %s", i, line)
		}
		_, hasOrg := m["org"]
		if hasOrg != (i == 1) {
			t.Errorf("line %d: org present = %v", i, hasOrg)
		}
	}
	var last map[string]any
	_ = json.Unmarshal([]byte(lines[1]), &last)
	if last["level"] != "WARN" || last["org"] != "68e3f605f2d61bb5556b7b20" {
		t.Errorf("last line: %v", last)
	}
}
