// Package logline keeps a log stream that several processes write into one
// JSON object per line, in the supervisor's slog shape (time, level, msg).
//
// The supervisor's stderr carries its own records, every worker's stderr
// and go-plugin's messages. go-plugin copies a worker's line and its newline
// in two writes, so two workers' lines could interleave; hclog's lines have
// another shape (@timestamp, @level, @message) and go-plugin prints them a
// second time; a panic's stack trace is plain text. Lines reassembles each
// source's output into whole lines, Relay turns every line into one slog
// record, and Sink writes each record with one Write under one lock.
package logline

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// Sink is the one writer at the end of the stream: each Write is written
// whole before the next begins. slog's JSON handler writes a record with a
// single Write, so it may write here directly.
type Sink struct {
	mu sync.Mutex
	w  io.Writer
}

// NewSink serializes writes to w.
func NewSink(w io.Writer) *Sink { return &Sink{w: w} }

func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// maxLine bounds a line kept in memory; a longer one is passed on in parts,
// each still one record.
const maxLine = 64 << 10

// Lines returns a writer that cuts what it is given into lines and calls fn
// with each whole line (without the newline), in order. Close passes on a
// last line that has no newline.
func Lines(fn func(line []byte)) io.WriteCloser {
	return &lines{fn: fn}
}

type lines struct {
	mu  sync.Mutex
	buf []byte
	fn  func([]byte)
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			for len(l.buf) >= maxLine {
				l.fn(l.buf[:maxLine])
				l.buf = append(l.buf[:0], l.buf[maxLine:]...)
			}
			break
		}
		l.buf = append(l.buf, p[:i]...)
		l.fn(l.buf)
		l.buf = l.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (l *lines) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.fn(l.buf)
		l.buf = nil
	}
	return nil
}

// Relay turns lines into records of one source: a slog-shaped line passes
// through (with the source's attributes added when missing), an hclog line
// is translated, anything else becomes a record holding the text.
type Relay struct {
	sink  io.Writer
	out   *slog.Logger
	attrs []slog.Attr
	// Drop, when set, discards hclog entries it matches (by @module).
	Drop    func(module string) bool
	inPanic bool
}

// NewRelay writes into sink, adding attrs (such as org) to every record.
func NewRelay(sink io.Writer, attrs ...slog.Attr) *Relay {
	h := slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug - 8})
	return &Relay{sink: sink, out: slog.New(h), attrs: attrs}
}

// Writer is a Lines writer that relays into r.
func (r *Relay) Writer() io.WriteCloser { return Lines(r.Line) }

// Line relays one line.
func (r *Relay) Line(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	var fields map[string]json.RawMessage
	if line[0] == '{' && json.Unmarshal(line, &fields) == nil {
		switch {
		case has(fields, "time", "level", "msg"):
			r.inPanic = false
			r.passThrough(line, fields)
			return
		case has(fields, "@message"):
			r.inPanic = false
			r.hclog(fields)
			return
		}
	}
	r.text(string(line))
}

func has(fields map[string]json.RawMessage, keys ...string) bool {
	for _, k := range keys {
		if _, ok := fields[k]; !ok {
			return false
		}
	}
	return true
}

// passThrough writes a line that already has the slog shape, adding the
// source's attributes it lacks.
func (r *Relay) passThrough(line []byte, fields map[string]json.RawMessage) {
	body := bytes.TrimRight(line, " \t")
	out := make([]byte, 0, len(line)+64)
	out = append(out, body[:len(body)-1]...) // without its closing brace
	for _, a := range r.attrs {
		if _, ok := fields[a.Key]; ok {
			continue
		}
		k, _ := json.Marshal(a.Key)
		v, _ := json.Marshal(a.Value.Any())
		out = append(append(append(append(out, ','), k...), ':'), v...)
	}
	out = append(out, '}', '\n')
	_, _ = r.sink.Write(out)
}

var hclogLevels = map[string]slog.Level{
	"trace": slog.LevelDebug - 4, "debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "error": slog.LevelError,
}

// hclog translates one hclog JSON entry.
func (r *Relay) hclog(fields map[string]json.RawMessage) {
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(fields[k], &s)
		return s
	}
	module := str("@module")
	if r.Drop != nil && r.Drop(module) {
		return
	}
	level, ok := hclogLevels[str("@level")]
	if !ok {
		level = slog.LevelInfo
	}
	at, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", str("@timestamp"))
	if err != nil {
		at = time.Now()
	}
	rec := slog.NewRecord(at, level, str("@message"), 0)
	if module != "" {
		rec.AddAttrs(slog.String("module", module))
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	seen := map[string]bool{}
	for _, k := range keys {
		var v any
		_ = json.Unmarshal(fields[k], &v)
		rec.AddAttrs(slog.Any(k, v))
		seen[k] = true
	}
	r.emit(rec, seen)
}

// text relays a line that is not JSON; a panic and its stack trace are errors.
func (r *Relay) text(line string) {
	if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		r.inPanic = true
	}
	level := slog.LevelWarn
	if r.inPanic {
		level = slog.LevelError
	}
	rec := slog.NewRecord(time.Now(), level, "output that is not a log record", 0)
	rec.AddAttrs(slog.String("line", line))
	r.emit(rec, map[string]bool{"line": true})
}

func (r *Relay) emit(rec slog.Record, seen map[string]bool) {
	for _, a := range r.attrs {
		if !seen[a.Key] {
			rec.AddAttrs(a)
		}
	}
	_ = r.out.Handler().Handle(context.Background(), rec)
}
