package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/wa-sidecar/wa-sidecar/shared/contract"
)

// spawnEnv makes the test binary act as a short-lived supervisor: start the
// worker, wait for its handshake, print its pid and exit without a goodbye,
// as a SIGKILLed supervisor would.
const spawnEnv = "WA_WORKER_TEST_SPAWN"

func TestMain(m *testing.M) {
	if bin := os.Getenv(spawnEnv); bin != "" {
		spawnAndVanish(bin)
		return
	}
	os.Exit(m.Run())
}

func spawnAndVanish(bin string) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), contract.Handshake.MagicCookieKey+"="+contract.Handshake.MagicCookieValue)
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err == nil {
		_, err = bufio.NewReader(out).ReadString('\n')
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(cmd.Process.Pid)
	os.Exit(0)
}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wa-worker")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestStartedByHand(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{} // no cookie
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit = %v, want status 2", err)
	}
	if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "wa-supervisor serve") {
		t.Errorf("stderr = %q, want one line pointing to wa-supervisor serve", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
}

// dispense starts cmd as the supervisor does (go-plugin, gRPC) and returns
// its worker; the process is killed when the test ends.
func dispense(t *testing.T, cmd *exec.Cmd) (contract.Worker, *plugin.Client) {
	t.Helper()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  contract.Handshake,
		Plugins:          contract.PluginMap(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn}),
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("connect to worker: %v", err)
	}
	raw, err := rpc.Dispense(contract.PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	return raw.(contract.Worker), client
}

// TestServesOverGoPlugin checks the handshake on stdout and one RPC, the
// way the supervisor starts the binary.
func TestServesOverGoPlugin(t *testing.T) {
	bin := build(t)
	w, client := dispense(t, exec.Command(bin))
	p, err := w.Ping(context.Background())
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	if int(p.Pid) != client.ReattachConfig().Pid || p.RssBytes <= 0 || p.Connected {
		t.Errorf("ping = %v", p)
	}
	if err := w.Stop(context.Background()); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// TestExitsWhenSupervisorVanishes: an orphaned worker must not keep a
// WhatsApp session alive next to the one a restarted supervisor opens.
func TestExitsWhenSupervisorVanishes(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), spawnEnv+"="+bin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("spawner printed %q", out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscallKill(pid)
			t.Fatal("orphaned worker still running after 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive treats a zombie as gone: whether the new parent reaps it is not
// the worker's business.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	fields := strings.Fields(string(rest))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

func syscallKill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// A production worker must not carry a fake WhatsApp server: only the small
// emulatorlink (a certificate root and a dialer) may be linked.
func TestWorkerDoesNotLinkTheEmulator(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/wa-sidecar/wa-sidecar/worker/cmd/wa-worker").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		if d == "github.com/wa-sidecar/wa-sidecar/worker/emulator" {
			t.Fatal("wa-worker links the emulator server package")
		}
	}
	if !slices.Contains(deps, "github.com/wa-sidecar/wa-sidecar/worker/emulatorlink") {
		t.Fatal("the list is not of wa-worker's dependencies")
	}
}

// The worker checks numbers with shared/phone/e164 alone: the phone-number
// library would cost it about 3 MB of binary and 2.5 MB of metadata
// decoded at init in every worker process, for numbers the supervisor has
// already read.
func TestWorkerDoesNotLinkThePhoneNumberLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/wa-sidecar/wa-sidecar/worker/cmd/wa-worker").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		if d == "github.com/nyaruka/phonenumbers" || d == "github.com/wa-sidecar/wa-sidecar/shared/phone" {
			t.Fatalf("wa-worker links %s", d)
		}
	}
	if !slices.Contains(deps, "github.com/wa-sidecar/wa-sidecar/shared/phone/e164") {
		t.Fatal("the list is not of wa-worker's dependencies, or the worker no longer checks numbers")
	}
}
