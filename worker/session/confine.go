package session

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/private"
	"github.com/wa-sidecar/wa-sidecar/worker/sandbox"
)

// wellKnownPorts are what a session dials on its own: WhatsApp's websocket
// (443, and 5222 for its raw socket), plain HTTP (80), and 53 for the TCP
// fallback of Go's resolver when an answer does not fit a UDP packet.
var wellKnownPorts = []uint16{443, 80, 5222, 53}

// confine sandboxes this process for req (sandbox.Apply) once the auth
// directory and the private temp dir inside it exist and everything the
// worker keeps open across the sandbox is open. It returns what is in force
// and whether something the kernel lacks was left out.
func confine(req *pb.StartRequest) (sandbox.Result, error) {
	mode, err := sandbox.ParseMode(req.Sandbox)
	if err != nil {
		return sandbox.Result{}, err
	}
	if err := private.Dir(req.AuthDir); err != nil {
		return sandbox.Result{}, fmt.Errorf("create auth dir: %w", err)
	}
	if mode == sandbox.Off {
		return sandbox.Result{Summary: "off"}, nil
	}
	// The launcher's TMPDIR is state_dir/run, shared by every worker and
	// outside this one's reach once confined: SQLite's and Go's temp files
	// go to a directory of this organization's own.
	tmp := filepath.Join(req.AuthDir, "tmp")
	if err := private.Dir(tmp); err != nil {
		return sandbox.Result{}, fmt.Errorf("create temp dir: %w", err)
	}
	if err := os.Setenv("TMPDIR", tmp); err != nil {
		return sandbox.Result{}, fmt.Errorf("set TMPDIR: %w", err)
	}
	if _, err := statm(); err != nil {
		return sandbox.Result{}, fmt.Errorf("open /proc/self/statm: %w", err)
	}
	// Loaded now, while the files are still reachable through symlinks into
	// /usr/share that the read-only rules do not cover.
	if _, err := x509.SystemCertPool(); err != nil {
		return sandbox.Result{}, fmt.Errorf("load TLS roots: %w", err)
	}
	ports, err := dialPorts(req)
	if err != nil {
		return sandbox.Result{}, err
	}
	res, err := sandbox.Apply(sandbox.Policy{Mode: mode, AuthDir: req.AuthDir, Ports: ports})
	if err != nil {
		return sandbox.Result{}, err
	}
	return res, nil
}

// dialPorts are the TCP ports this session may connect to: the well-known
// ones, the proxy's and, in emulator mode, the emulator's.
func dialPorts(req *pb.StartRequest) ([]uint16, error) {
	ports := append([]uint16(nil), wellKnownPorts...)
	for name, raw := range map[string]string{"proxy": req.Proxy, "emulator_url": req.EmulatorUrl} {
		if raw == "" {
			continue
		}
		port, err := urlPort(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		ports = append(ports, port)
	}
	return ports, nil
}

// urlPort is a URL's explicit port, or its scheme's default.
func urlPort(raw string) (uint16, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// The proxy's own error could carry its password.
		return 0, fmt.Errorf("not a URL")
	}
	if _, p, err := net.SplitHostPort(u.Host); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		return uint16(n), nil
	}
	switch u.Scheme {
	case "http", "ws":
		return 80, nil
	case "https", "wss":
		return 443, nil
	case "socks5", "socks5h":
		return 1080, nil
	}
	return 0, fmt.Errorf("no port and no default port for scheme %q", u.Scheme)
}
