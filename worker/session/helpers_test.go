package session

import (
	"io"
	"log/slog"
	"os"
	"testing"

	signallog "go.mau.fi/libsignal/logger"

	"github.com/wa-sidecar/wa-sidecar/worker/badmac"
)

func discardLog() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// testLog writes to stderr only with -v, where a failing emulator run needs it.
func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(NewLogHandler(os.Stderr, slog.LevelInfo))
	}
	return discardLog()
}

// installSignal makes d libsignal's (process-global) logger and returns a
// function that logs an error through libsignal's own package, as
// SessionCipher does.
func installSignal(t *testing.T, d *badmac.Detector) func(msg ...any) {
	t.Helper()
	d.InstallSignalLogger(discardLog())
	return signallog.Error
}
