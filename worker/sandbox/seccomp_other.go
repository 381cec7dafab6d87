//go:build !amd64 && !arm64

package sandbox

import (
	"errors"
	"runtime"
)

// denyUnixSockets has no filter for this architecture's system call table.
func denyUnixSockets() error {
	return errors.New("no filter built for " + runtime.GOARCH)
}
