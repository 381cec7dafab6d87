//go:build !sandboxprobe

package session

import "log/slog"

// newProbe is the sandbox probe of test builds (probe_sandboxprobe.go);
// the production worker carries none.
func newProbe(string) func(*slog.Logger) { return func(*slog.Logger) {} }
