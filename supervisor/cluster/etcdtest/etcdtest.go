// Package etcdtest runs a real one-member etcd (Debian's etcd-server
// binary, which .ci/run installs) for tests, on loopback ports, in a
// temporary directory, and can kill and restart it on the same ports.
//
// A binary rather than go.etcd.io/etcd/server/v3/embed: embedding the
// server in the test process pulls the whole etcd server (bbolt, raft,
// grpc-gateway, otel) into go.mod and ties grpc's version to etcd's,
// which go-plugin must then tolerate; the client alone moves nothing.
package etcdtest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Binary is the etcd binary: $WA_SIDECAR_ETCD, else etcd on the PATH.
func Binary() (string, error) {
	if p := os.Getenv("WA_SIDECAR_ETCD"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("no etcd binary: apt-get install etcd-server (.ci/run does) or set WA_SIDECAR_ETCD: %w", err)
	}
	return p, nil
}

// Server is one etcd member.
type Server struct {
	// URL is the client endpoint, e.g. http://127.0.0.1:41234.
	URL string

	t       testing.TB
	bin     string
	dir     string
	peerURL string
	cmd     *exec.Cmd
	done    chan struct{}
	logFile string
}

// Start runs etcd and waits until it answers; it is killed at the end of
// the test.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	s.logFile = filepath.Join(s.dir, "etcd.log")
	// The ports must stay the same across a restart (the supervisors
	// know this URL), so they are chosen here; a port taken meanwhile by
	// someone else fails the start, which is then tried with new ones.
	for attempt := 0; ; attempt++ {
		ports := freePorts(t, 2)
		s.URL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		s.peerURL = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		if err := s.start(); err == nil {
			break
		} else if attempt == 4 {
			t.Fatalf("etcd did not start: %v\n%s", err, s.log())
		}
		_ = os.RemoveAll(filepath.Join(s.dir, "data"))
	}
	t.Cleanup(s.Kill)
	return s
}

// Kill ends etcd with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts etcd again on the same ports with the same data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := s.start()
		if err == nil {
			return
		}
		// The kernel may hold the port a moment after the kill.
		if time.Now().After(deadline) {
			s.t.Fatalf("etcd did not restart: %v\n%s", err, s.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *Server) start() error {
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin,
		"--name", "test",
		"--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", s.URL,
		"--advertise-client-urls", s.URL,
		"--listen-peer-urls", s.peerURL,
		"--initial-advertise-peer-urls", s.peerURL,
		"--initial-cluster", "test="+s.peerURL,
		"--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("etcd exited: %v", cmd.ProcessState)
		default:
		}
		resp, err := client.Get(s.URL + "/health")
		if err == nil {
			ok := resp.StatusCode == http.StatusOK
			resp.Body.Close()
			if ok {
				s.cmd, s.done = cmd, done
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-done
	return fmt.Errorf("etcd did not answer /health within 20s")
}

func (s *Server) log() string {
	b, _ := os.ReadFile(s.logFile)
	return strings.TrimSpace(string(b))
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
