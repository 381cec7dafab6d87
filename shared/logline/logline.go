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

// Relay turns lines into records of one source. A line in slog's shape or
// hclog's becomes one record with its time, level, message and fields; any
// other line becomes a record holding the text. The source's attributes
// (such as org) always win: a field of the line with the same name, or
// with the name of time, level or msg, is kept as "worker_<name>", so a
// worker cannot speak for another organization or forge a record's level.
type Relay struct {
	out     slog.Handler
	attrs   []slog.Attr
	inPanic bool
}

// NewRelay writes into sink, adding attrs (such as org) to every record.
func NewRelay(sink io.Writer, attrs ...slog.Attr) *Relay {
	return &Relay{out: slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug - 8}), attrs: attrs}
}

// Writer is a Lines writer that relays into r.
func (r *Relay) Writer() io.WriteCloser { return Lines(r.Line) }

// the shapes a record arrives in: hclog's keys (looked for first, since its
// fields may hold a "msg"), and slog's.
var shapes = []struct{ time, level, msg, module string }{
	{"@timestamp", "@level", "@message", "@module"},
	{"time", "level", "msg", ""},
}

// Line relays one line.
func (r *Relay) Line(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	var fields map[string]json.RawMessage
	if line[0] == '{' && json.Unmarshal(line, &fields) == nil {
		for _, sh := range shapes {
			if _, ok := fields[sh.msg]; ok {
				r.inPanic = false
				r.record(fields, sh.time, sh.level, sh.msg, sh.module)
				return
			}
		}
	}
	r.text(string(line))
}

// record emits one structured line; the time, level and message keys are
// taken out of the fields, the rest follow in name order.
func (r *Relay) record(fields map[string]json.RawMessage, timeKey, levelKey, msgKey, moduleKey string) {
	str := func(k string) string {
		var s string
		if json.Unmarshal(fields[k], &s) != nil {
			return strings.Trim(string(fields[k]), `"`)
		}
		return s
	}
	at, err := time.Parse(time.RFC3339Nano, str(timeKey))
	if err != nil {
		if at, err = time.Parse("2006-01-02T15:04:05.000000Z07:00", str(timeKey)); err != nil {
			at = time.Now()
		}
	}
	rec := slog.NewRecord(at, parseLevel(str(levelKey)), str(msgKey), 0)
	if moduleKey != "" {
		if m := str(moduleKey); m != "" {
			rec.AddAttrs(slog.String("module", m))
		}
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != timeKey && k != levelKey && k != msgKey && k != moduleKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		var v any
		_ = json.Unmarshal(fields[k], &v)
		rec.AddAttrs(slog.Any(r.own(k), v))
	}
	r.emit(rec)
}

// own keeps a line's field from taking a name the record or its source
// owns.
func (r *Relay) own(key string) string {
	switch key {
	case slog.TimeKey, slog.LevelKey, slog.MessageKey, "module":
		return "worker_" + key
	}
	for _, a := range r.attrs {
		if a.Key == key {
			return "worker_" + key
		}
	}
	return key
}

var hclogLevels = map[string]slog.Level{
	"trace": slog.LevelDebug - 4, "debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "error": slog.LevelError,
}

// parseLevel reads slog's level names ("INFO", "DEBUG-4") and hclog's.
func parseLevel(s string) slog.Level {
	if l, ok := hclogLevels[s]; ok {
		return l
	}
	var l slog.Level
	if l.UnmarshalText([]byte(s)) != nil {
		return slog.LevelInfo
	}
	return l
}

// text relays a line that is not a record; a panic and its stack trace
// are errors.
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
	r.emit(rec)
}

func (r *Relay) emit(rec slog.Record) {
	rec.AddAttrs(r.attrs...)
	_ = r.out.Handle(context.Background(), rec)
}
