package emulator

import (
	"context"
	"fmt"
	"log/slog"

	waLog "go.mau.fi/whatsmeow/util/log"
)

// slogWaLogger lets whatsmeow's sqlstore log through slog like the rest of
// the emulator.
type slogWaLogger struct{ l *slog.Logger }

func waLogger(l *slog.Logger) waLog.Logger { return slogWaLogger{l} }

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
	return slogWaLogger{w.l.With("module", module)}
}
