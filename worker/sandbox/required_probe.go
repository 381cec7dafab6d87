//go:build sandboxprobe

package sandbox

import (
	"os"
	"strconv"
)

// ProbeABIEnv, in a worker built with -tags sandboxprobe (tests only),
// raises the ABI that "require" insists on, to see a kernel refused.
const ProbeABIEnv = "WA_SIDECAR_SANDBOX_TEST_ABI"

func requiredABI() int {
	if n, err := strconv.Atoi(os.Getenv(ProbeABIEnv)); err == nil {
		return n
	}
	return netABI
}
