package session

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/worker/proxydial"
)

// throughProxy names the proxy (without credentials) in a connect error and
// removes the credentials from its text: net/http, the proxy dialers and
// whatsmeow may build that text from the URL, and it travels to the
// supervisor as the organization's last_error. The original error is not
// wrapped, so that no caller can print its unscrubbed text.
func throughProxy(err error, proxyURL string) error {
	if proxyURL == "" {
		return err
	}
	return fmt.Errorf("connect through proxy %s: %s", proxy.Name(proxyURL), proxy.Scrub(err.Error(), proxyURL))
}

// whatsAppHost is where whatsmeow's websocket goes (socket.URL).
const whatsAppHost = "web.whatsapp.com:443"

// preflightTimeout matches the proxy dial timeout whatsmeow uses.
const preflightTimeout = 30 * time.Second

// preflight opens, and closes, one tunnel to WhatsApp through the proxy.
// whatsmeow retries a failed connect of a linked device in the background,
// so a dead proxy or a wrong password would never show; checked first, it
// fails the start with the proxy named, as in emulator mode.
func preflight(ctx context.Context, proxyURL string) error {
	dial, err := proxydial.To(whatsAppHost, proxyURL, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	return conn.Close()
}

// scrubHandler removes the organization's proxy credentials from every
// record of the session's logger, whatsmeow's lines included: their
// connect errors are formatted by code the worker does not control.
type scrubHandler struct {
	inner    slog.Handler
	proxyURL *atomic.Pointer[string] // shared with derived handlers; nil until Start
}

func newScrubHandler(inner slog.Handler) *scrubHandler {
	return &scrubHandler{inner: inner, proxyURL: new(atomic.Pointer[string])}
}

// scrub makes every later record, including those of loggers derived
// before, free of proxyURL's credentials.
func (h *scrubHandler) scrub(proxyURL string) { h.proxyURL.Store(&proxyURL) }

func (h *scrubHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	p := h.proxyURL.Load()
	if p == nil {
		return h.inner.Handle(ctx, r)
	}
	clean := slog.NewRecord(r.Time, r.Level, proxy.Scrub(r.Message, *p), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		clean.AddAttrs(scrubAttr(a, *p))
		return true
	})
	return h.inner.Handle(ctx, clean)
}

func (h *scrubHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if p := h.proxyURL.Load(); p != nil {
		clean := make([]slog.Attr, len(attrs))
		for i, a := range attrs {
			clean[i] = scrubAttr(a, *p)
		}
		attrs = clean
	}
	return &scrubHandler{inner: h.inner.WithAttrs(attrs), proxyURL: h.proxyURL}
}

func (h *scrubHandler) WithGroup(name string) slog.Handler {
	return &scrubHandler{inner: h.inner.WithGroup(name), proxyURL: h.proxyURL}
}

// scrubAttr renders values that are not plain strings (errors, Stringers)
// as text only when that text held credentials, so that other values keep
// their JSON shape.
func scrubAttr(a slog.Attr, proxyURL string) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, proxy.Scrub(v.String(), proxyURL))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]any, len(group))
		for i, g := range group {
			clean[i] = scrubAttr(g, proxyURL)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		text := fmt.Sprint(v.Any())
		if scrubbed := proxy.Scrub(text, proxyURL); scrubbed != text {
			return slog.String(a.Key, scrubbed)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
