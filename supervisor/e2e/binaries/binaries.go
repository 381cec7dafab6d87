// Package binaries gives the end-to-end suites (single host and cluster)
// the wa-supervisor and wa-worker they run: the directory `make e2e` passes
// in WA_SIDECAR_BIN, or a fresh build of both in a temporary directory.
package binaries

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Main runs a test package's tests with dir set to the binaries'
// directory, then exits with their code; a build that fails exits 1.
func Main(m *testing.M, dir *string) {
	*dir = os.Getenv("WA_SIDECAR_BIN")
	cleanup := func() {}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "wa-sidecar-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = func() { os.RemoveAll(tmp) }
		for _, pkg := range []string{"supervisor/cmd/wa-supervisor", "worker/cmd/wa-worker"} {
			cmd := exec.Command("go", "build", "-o", tmp, "github.com/wa-sidecar/wa-sidecar/"+pkg)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n", pkg, err)
				cleanup()
				os.Exit(1)
			}
		}
		*dir = tmp
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}
