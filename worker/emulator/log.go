package emulator

import (
	"context"
	"fmt"
	"log/slog"

	waLog "go.mau.fi/whatsmeow/util/log"
)

// slogWaLogger lets whatsmeow's sqlstore log through slog like the rest of
// the emulator. Sub joins nested module names into one "module" attribute
// ("a/b"), so a line never carries the key twice.
type slogWaLogger struct {
	base   *slog.Logger // without module
	module string
	l      *slog.Logger // base with module attached
}

func waLogger(l *slog.Logger) waLog.Logger { return slogWaLogger{base: l, l: l} }

func (w slogWaLogger) logf(level slog.Level, msg string, args []any) {
	if w.l.Enabled(context.Background(), level) {
		w.l.Log(context.Background(), level, fmt.Sprintf(msg, args...))
	}
}

func (w slogWaLogger) Warnf(msg string, args ...any)  { w.logf(slog.LevelWarn, msg, args) }
func (w slogWaLogger) Errorf(msg string, args ...any) { w.logf(slog.LevelError, msg, args) }
func (w slogWaLogger) Infof(msg string, args ...any)  { w.logf(slog.LevelInfo, msg, args) }
func (w slogWaLogger) Debugf(msg string, args ...any) { w.logf(slog.LevelDebug, msg, args) }
func (w slogWaLogger) Sub(module string) waLog.Logger {
	if w.module != "" {
		module = w.module + "/" + module
	}
	return slogWaLogger{base: w.base, module: module, l: w.base.With("module", module)}
}
