package session

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
)

// LogHandler writes slog records as JSON lines in the same shape as the
// supervisor's own (time, level, msg), so one stream holds both. The
// supervisor passes worker stderr through verbatim; go-plugin only re-logs
// lines carrying hclog's @level key, so these are never printed twice.
// Once the organization is known, every record carries org=<id>.
type LogHandler struct {
	inner slog.Handler
	org   *atomic.Pointer[string] // shared with derived handlers
}

// NewLogHandler returns a handler writing to w at level.
func NewLogHandler(w io.Writer, level slog.Leveler) *LogHandler {
	inner := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return &LogHandler{inner: inner, org: new(atomic.Pointer[string])}
}

// SetOrg makes every later record carry org=id, including those of loggers
// derived before the id was known (the libsignal and whatsmeow adapters).
func (h *LogHandler) SetOrg(id string) { h.org.Store(&id) }

func (h *LogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := h.org.Load(); id != nil {
		r = r.Clone()
		r.AddAttrs(slog.String("org", *id))
	}
	return h.inner.Handle(ctx, r)
}

func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LogHandler{inner: h.inner.WithAttrs(attrs), org: h.org}
}

func (h *LogHandler) WithGroup(name string) slog.Handler {
	return &LogHandler{inner: h.inner.WithGroup(name), org: h.org}
}

// ParseLevel turns the StartRequest's log_level into a slog level; empty
// keeps the current one.
func ParseLevel(s string) (slog.Level, bool, error) {
	if s == "" {
		return 0, false, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, false, err
	}
	return l, true, nil
}
