package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

// buildTagged builds the worker without cgo, as `make build` does (go-landlock
// then reaches every thread through the Go runtime rather than libpsx).
func buildTagged(t *testing.T, tags string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wa-worker")
	args := []string{"build", "-o", bin}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// A kernel below what sandbox = "require" needs (simulated: the probe
// build's knob asks for ABI 99) refuses the start with a sentence naming
// what is missing, before the store is opened.
func TestRequireRefusesAKernelWithoutTheABI(t *testing.T) {
	bin := buildTagged(t, "sandboxprobe")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "WA_SIDECAR_SANDBOX_TEST_ABI=99")
	w, _ := dispense(t, cmd)
	auth := filepath.Join(t.TempDir(), "refused")
	_, err := w.Start(context.Background(), &pb.StartRequest{
		OrganizationId: "refused", AuthDir: auth, Sandbox: "require", EmulatorUrl: "http://127.0.0.1:1",
	})
	if err == nil {
		t.Fatal("Start under require on a kernel without ABI 99 succeeded")
	}
	for _, want := range []string{`sandbox = "require"`, "Landlock ABI", "needs ABI 99", `"best_effort"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(auth, "whatsmeow.db")); !os.IsNotExist(err) {
		t.Errorf("the refused worker opened its store: %v", err)
	}
}

// The probe and its knob exist only in -tags sandboxprobe builds: the
// production worker carries neither (and the check sees them where they are).
func TestProductionWorkerHasNoSandboxProbe(t *testing.T) {
	marks := []string{"sandbox probe", "WA_SIDECAR_SANDBOX_TEST_ABI", "sandbox-probe.txt"}
	for _, c := range []struct {
		tags string
		want bool
	}{{"", false}, {"sandboxprobe", true}} {
		bin := buildTagged(t, c.tags)
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range marks {
			if bytes.Contains(data, []byte(m)) != c.want {
				t.Errorf("build with tags %q: contains %q = %v, want %v", c.tags, m, !c.want, c.want)
			}
		}
		info, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(info), "-tags=sandboxprobe") != c.want {
			t.Errorf("build with tags %q: go version -m says\n%s", c.tags, info)
		}
	}
}
