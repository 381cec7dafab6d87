package session

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
)

// LogHandler writes slog records as JSON lines that go-plugin's host side
// understands: it parses worker stderr lines with the keys @timestamp,
// @level and @message (hclog's JSON) and re-logs them with their level and
// fields; any other JSON it would pass on verbatim at debug level. Once the
// organization is known, every record carries org=<id>.
type LogHandler struct {
	inner slog.Handler
	org   *atomic.Pointer[string] // shared with derived handlers
}

// hclogTime is the only timestamp layout go-plugin's parser accepts; any
// other makes it drop the line's level.
const hclogTime = "2006-01-02T15:04:05.000000Z07:00"

// NewLogHandler returns a handler writing to w at level.
func NewLogHandler(w io.Writer, level slog.Leveler) *LogHandler {
	inner := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format(hclogTime))
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	})
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
