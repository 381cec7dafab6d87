//go:build sandboxprobe

package session

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ProbeFile, next to state_dir, lists what a worker built with -tags
// sandboxprobe (tests only) tries to reach once its sandbox is in force,
// one target a line: "file:PATH", "tcp:HOST:PORT" or "unix:PATH"
// ("require-abi:N" instead makes sandbox = "require" insist on ABI N). It is
// read before the sandbox applies; each try is logged as "sandbox probe"
// with target= and result= ("ok" or the errno's name). The worker's own
// store is always tried too.
const ProbeFile = "sandbox-probe.txt"

// newProbe reads the list from state_dir/../ProbeFile (the auth directory
// is state_dir/auth_sessions/ORG); the returned func tries each target.
func newProbe(authDir string) func(*slog.Logger) {
	targets := []string{"file:" + filepath.Join(authDir, "whatsmeow.db")}
	if f, err := os.Open(filepath.Join(authDir, "..", "..", "..", ProbeFile)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			t := strings.TrimSpace(sc.Text())
			if abi, ok := strings.CutPrefix(t, "require-abi:"); ok {
				// The launcher passes no environment of the test's: this
				// line sets worker/sandbox's test knob instead.
				os.Setenv("WA_SIDECAR_SANDBOX_TEST_ABI", abi)
			} else if t != "" {
				targets = append(targets, t)
			}
		}
		f.Close()
	}
	return func(log *slog.Logger) {
		for _, t := range targets {
			log.Info("sandbox probe", "target", t, "result", try(t))
		}
	}
}

func try(target string) string {
	kind, what, _ := strings.Cut(target, ":")
	var err error
	switch kind {
	case "file":
		var f *os.File
		if f, err = os.Open(what); err == nil {
			f.Close()
		}
	case "tcp", "unix":
		var c net.Conn
		if c, err = net.DialTimeout(kind, what, 2*time.Second); err == nil {
			c.Close()
		}
	default:
		return "unknown target"
	}
	var errno syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &errno):
		return unix.ErrnoName(errno)
	}
	return err.Error()
}
