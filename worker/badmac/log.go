package badmac

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	signallog "go.mau.fi/libsignal/logger"
	waLog "go.mau.fi/whatsmeow/util/log"
)

// The whatsmeow log formats the Detector listens to (message.go in the
// pinned version). Matching the format string rather than the rendered line
// keeps the error value, so errors.Is works on it.
const (
	formatDecryptStart = "Decrypting message from %s"
	formatDecryptError = "Error decrypting message %s from %s: %v"
)

// InstallSignalLogger routes go.mau.fi/libsignal's package logger through
// the Detector to log. It is process-global. Call it before anything can
// decrypt: libsignal's default logger prints to stdout, which go-plugin
// reads as its handshake channel.
func (d *Detector) InstallSignalLogger(log *slog.Logger) {
	var l signallog.Loggable = &signalLogger{d: d, log: log.With("lib", "libsignal")}
	signallog.Setup(&l)
}

// signalLogger is libsignal's Loggable, feeding MAC mismatches to the Detector.
type signalLogger struct {
	d   *Detector
	log *slog.Logger
}

// Debug is dropped: libsignal's debug lines print whole session records,
// key material included, and its own default logger drops them too.
func (s *signalLogger) Debug(string, string) {}

func (s *signalLogger) Info(caller, msg string)    { s.emit(slog.LevelInfo, caller, msg) }
func (s *signalLogger) Warning(caller, msg string) { s.emit(slog.LevelWarn, caller, msg) }
func (s *signalLogger) Error(caller, msg string)   { s.emit(slog.LevelError, caller, msg) }

// Configure is libsignal's per-file filter for its default logger; levels
// are slog's business here.
func (s *signalLogger) Configure(string) {}

func (s *signalLogger) emit(level slog.Level, caller, msg string) {
	if strings.Contains(msg, macText) {
		s.d.macMismatch()
	}
	s.log.Log(context.Background(), level, msg, "caller", caller)
}

// WhatsmeowLogger returns a whatsmeow logger that writes to log and lets
// the Detector see the decrypt lines. Give it to whatsmeow.NewClient and
// sqlstore.New; its sub-loggers observe too.
func (d *Detector) WhatsmeowLogger(log *slog.Logger) waLog.Logger {
	base := log.With("lib", "whatsmeow")
	return &whatsmeowLogger{d: d, base: base, log: base}
}

// whatsmeowLogger keeps the logger without a module (base) so that Sub can
// join nested module names into one "module" attribute ("Client/Recv")
// instead of stacking With calls, which would print "module" twice on one
// JSON line.
type whatsmeowLogger struct {
	d      *Detector
	base   *slog.Logger
	module string
	log    *slog.Logger // base with module attached
}

func (w *whatsmeowLogger) Errorf(format string, args ...any) { w.emit(slog.LevelError, format, args) }
func (w *whatsmeowLogger) Warnf(format string, args ...any)  { w.emit(slog.LevelWarn, format, args) }
func (w *whatsmeowLogger) Infof(format string, args ...any)  { w.emit(slog.LevelInfo, format, args) }
func (w *whatsmeowLogger) Debugf(format string, args ...any) { w.emit(slog.LevelDebug, format, args) }

func (w *whatsmeowLogger) Sub(module string) waLog.Logger {
	if w.module != "" {
		module = w.module + "/" + module
	}
	return &whatsmeowLogger{d: w.d, base: w.base, module: module, log: w.base.With("module", module)}
}

func (w *whatsmeowLogger) emit(level slog.Level, format string, args []any) {
	switch {
	case format == formatDecryptStart:
		w.d.decryptStarted()
	case format == formatDecryptError && len(args) == 3:
		id := fmt.Sprint(args[0])
		err, _ := args[2].(error)
		w.d.decryptFailed(id, err, fmt.Sprint(args[2]))
	}
	// Formatting every receive line costs; skip it when the level is off.
	if !w.log.Enabled(context.Background(), level) {
		return
	}
	w.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}
