// Package sandbox confines a worker process before it opens its store, so
// that code taken over through what WhatsApp or a contact sent reaches its
// own organization's keys and nothing else: no other organization's store,
// no supervisor database, no API key, no configuration.
//
// The layers, each applied to every thread of the process:
//   - Landlock (github.com/landlock-lsm/go-landlock): files read-write only
//     in the organization's auth directory (which holds its temp dir),
//     read-only what TLS roots, time zones and DNS need; TCP connect only to
//     the ports the session dials, no TCP bind (ABI 4); no signals to and
//     no abstract unix sockets of processes outside the worker (ABI 6).
//   - seccomp: no new unix socket (pathname unix sockets, which hold other
//     workers' plugin sockets and the supervisor's API socket, are beyond
//     Landlock before ABI 9) and no io_uring (which would bypass seccomp).
//   - no_new_privs, core dumps off and not dumpable, a bound on open files.
package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// Mode is the [workers] sandbox setting.
type Mode string

const (
	BestEffort Mode = "best_effort"
	Require    Mode = "require"
	Off        Mode = "off"
)

// ParseMode reads StartRequest.sandbox; empty is BestEffort, the default.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return BestEffort, nil
	case BestEffort, Require, Off:
		return m, nil
	}
	return "", fmt.Errorf("sandbox %q is not one of best_effort, require, off", s)
}

// netABI is the first Landlock ABI with TCP port rules: below it, a
// taken-over worker could reach any host and port, so "require" refuses.
const netABI = 4

// MaxOpenFiles bounds the worker's descriptors: a session holds its store,
// a websocket and a few more; the bound keeps a runaway from exhausting the
// host's table.
const MaxOpenFiles = 1024

// Policy is what one worker may touch.
type Policy struct {
	Mode Mode
	// AuthDir is the organization's store directory (read-write); it must
	// exist, as must its temp dir inside it.
	AuthDir string
	// Ports are the TCP ports the worker may connect to.
	Ports []uint16
}

// readOnly is what the worker reads after it is confined: TLS roots (Go's
// crypto/x509 list for Linux), time zones, and the files Go's resolver reads
// to look up WhatsApp's or a proxy's host name. Missing ones are skipped.
var (
	readOnlyFiles = []string{
		"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/ca-bundle.pem", "/etc/pki/tls/cacert.pem",
		"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/cert.pem",
		"/etc/localtime", "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf",
	}
	readOnlyDirs = []string{"/etc/ssl/certs", "/etc/pki/tls/certs", "/usr/share/zoneinfo"}
)

// Result is what Apply put in force.
type Result struct {
	// Summary is a short sentence for the status object and the start log.
	Summary string
	// Partial: the kernel lacked part of the sandbox (best effort only).
	Partial bool
}

// Apply confines the calling process for good and returns what is in
// force, a short sentence for the status object and the start log. Under
// Require, a kernel whose Landlock ABI is too old is refused before
// anything is applied, with a sentence naming what it lacks, and a layer
// that fails to apply fails the start; under BestEffort it applies what it
// can and the sentence says what is missing.
func Apply(p Policy) (Result, error) {
	if p.Mode == Off {
		return Result{Summary: "off"}, nil
	}
	abi, _ := llsys.LandlockGetABIVersion()
	if abi < 0 {
		abi = 0
	}
	if p.Mode == Require {
		if err := enough(abi, requiredABI()); err != nil {
			return Result{}, err
		}
	}
	if err := limit(); err != nil {
		return Result{}, err
	}
	// seccomp first: it sets no_new_privs on every thread with it (TSYNC),
	// which Landlock needs too, and it holds without Landlock.
	seccompErr := denyUnixSockets()
	if seccompErr != nil && p.Mode == Require {
		return Result{}, fmt.Errorf("sandbox = \"require\": %w", seccompErr)
	}
	var landlockErr error
	if abi > 0 {
		landlockErr = restrict(p)
		if landlockErr != nil && p.Mode == Require {
			return Result{}, fmt.Errorf("sandbox = \"require\": %w", landlockErr)
		}
	}
	partial := abi < netABI || landlockErr != nil || seccompErr != nil
	return Result{Summary: describe(abi, landlockErr, seccompErr), Partial: partial}, nil
}

// enough is the refusal sentence of "require" on a kernel below want.
func enough(abi, want int) error {
	switch {
	case abi == 0:
		return errors.New(`sandbox = "require", but this kernel has no Landlock (Linux 5.13 or later, with landlock in its lsm= list); set sandbox = "best_effort" or upgrade the kernel`)
	case abi < want:
		return fmt.Errorf(`sandbox = "require", but this kernel offers Landlock ABI %d and the worker needs ABI %d (TCP port rules: Linux 6.7 or later); set sandbox = "best_effort" or upgrade the kernel`, abi, want)
	}
	return nil
}

// describe is the sentence of what holds, e.g. "landlock abi 7: fs, net,
// scope; seccomp: no unix sockets; nnp, no core, 1024 files".
func describe(abi int, landlockErr, seccompErr error) string {
	var parts []string
	switch {
	case abi == 0:
		parts = append(parts, "no landlock (the kernel lacks it)")
	case landlockErr != nil:
		parts = append(parts, "no landlock ("+landlockErr.Error()+")")
	default:
		have := []string{"fs"}
		if abi >= netABI {
			have = append(have, "net")
		}
		if abi >= 6 {
			have = append(have, "scope")
		}
		s := fmt.Sprintf("landlock abi %d: %s", abi, strings.Join(have, ", "))
		if abi < netABI {
			s += " (no tcp port rules: needs abi 4)"
		}
		parts = append(parts, s)
	}
	if seccompErr != nil {
		parts = append(parts, "no seccomp ("+seccompErr.Error()+")")
	} else {
		parts = append(parts, "seccomp: no unix sockets")
	}
	parts = append(parts, fmt.Sprintf("nnp, no core, %d files", MaxOpenFiles))
	return strings.Join(parts, "; ")
}

// limit sets the process-wide limits: no core dump (it would hold the
// device's keys), not dumpable (no same-user ptrace or /proc/<pid>/mem),
// and a bound on open files that the worker cannot raise again.
func limit() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("sandbox: core dumps off: %w", err)
	}
	var nofile unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		return fmt.Errorf("sandbox: open files: %w", err)
	}
	nofile.Cur, nofile.Max = min(nofile.Cur, MaxOpenFiles), min(nofile.Max, MaxOpenFiles)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		return fmt.Errorf("sandbox: open files: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: not dumpable: %w", err)
	}
	return nil
}

// restrict applies the Landlock ruleset on every thread, as much of it as
// the kernel knows (V9 and below: V10's UDP rules would need DNS's port).
func restrict(p Policy) error {
	auth, err := filepath.Abs(p.AuthDir)
	if err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	rules := []landlock.Rule{
		landlock.RWDirs(auth),
		landlock.ROFiles(readOnlyFiles...).IgnoreIfMissing(),
		landlock.RODirs(readOnlyDirs...).IgnoreIfMissing(),
	}
	ports := slices.Clone(p.Ports)
	slices.Sort(ports)
	for _, port := range slices.Compact(ports) {
		rules = append(rules, landlock.ConnectTCP(port))
	}
	if err := landlock.V9.BestEffort().Restrict(rules...); err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	return nil
}
