package logline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// records parses out as one JSON object per line, failing on anything else.
func records(t testing.TB, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line is not one JSON object: %q: %v", line, err)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("line lacks %q: %s", k, line)
			}
		}
		recs = append(recs, m)
	}
	return recs
}

func TestLinesReassemblesAndCuts(t *testing.T) {
	var got []string
	w := Lines(func(l []byte) { got = append(got, string(l)) })
	for _, part := range []string{"ab", "c\nde", "f\n\ng", "h"} {
		w.Write([]byte(part))
	}
	w.Close()
	if want := []string{"abc", "def", "", "gh"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	got = nil
	w = Lines(func(l []byte) { got = append(got, string(l)) })
	w.Write(bytes.Repeat([]byte("x"), maxLine*2+5))
	w.Write([]byte("\n"))
	if len(got) != 3 || len(got[0]) != maxLine || len(got[2]) != 5 {
		t.Fatalf("a long line came out as %d parts", len(got))
	}
}

func TestRelayShapes(t *testing.T) {
	var out bytes.Buffer
	r := NewRelay(&out, slog.String("org", "2"))
	r.Line([]byte(`{"time":"2026-12-02T00:00:00Z","level":"INFO","msg":"connected","jid":"j"}`))
	r.Line([]byte(`{"time":"2026-12-02T00:00:00Z","level":"DEBUG-4","msg":"mine","nested":{"a":{}}}`))
	r.Line([]byte(`{"@level":"warn","@message":"plugin failed to exit gracefully","@module":"go-plugin","@timestamp":"2026-12-02T01:02:03.000000Z","pid":12}`))
	r.Line([]byte(`plain words`))
	r.Line([]byte(`panic: boom`))
	r.Line([]byte(`goroutine 1 [running]:`))
	r.Line([]byte(`{"not":"a record"}`))
	r.Line([]byte("   "))
	recs := records(t, out.String())
	if len(recs) != 7 {
		t.Fatalf("%d records:\n%s", len(recs), out.String())
	}
	want := []struct{ level, msg string }{
		{"INFO", "connected"},
		{"DEBUG-4", "mine"},
		{"WARN", "plugin failed to exit gracefully"},
		{"WARN", "output that is not a log record"},
		{"ERROR", "output that is not a log record"},
		{"ERROR", "output that is not a log record"},
		// Still the crash's output: only a record ends it.
		{"ERROR", "output that is not a log record"},
	}
	for i, w := range want {
		if recs[i]["level"] != w.level || recs[i]["msg"] != w.msg || recs[i]["org"] != "2" {
			t.Errorf("record %d: %v, want %+v", i, recs[i], w)
		}
	}
	if recs[0]["jid"] != "j" || recs[0]["time"] != "2026-12-02T00:00:00Z" {
		t.Errorf("fields lost: %v", recs[0])
	}
	if recs[2]["module"] != "go-plugin" || recs[2]["pid"] != float64(12) || recs[2]["time"] != "2026-12-02T01:02:03Z" {
		t.Errorf("hclog entry translated to %v", recs[2])
	}
}

// A worker cannot speak for another organization or forge a record's
// level: the source's attributes win, and the line's own keep their value
// under another name.
func TestRelayCannotBeForged(t *testing.T) {
	var out bytes.Buffer
	r := NewRelay(&out, slog.String("org", "2"))
	r.Line([]byte(`{"time":"2026-12-02T00:00:00Z","level":"ERROR","msg":"bad mac trip","org":"victim"}`))
	r.Line([]byte(`{"@level":"info","@message":"x","@timestamp":"2026-12-02T01:02:03.000000Z","msg":"spoofed","level":"DEBUG","org":"victim"}`))
	r.Line([]byte(`{"@message":1,"@level":[],"@timestamp":{}}`))
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		for _, k := range []string{`"org"`, `"msg"`, `"level"`} {
			if n := strings.Count(line, k+":"); n != 1 {
				t.Fatalf("%s appears %d times in %s", k, n, line)
			}
		}
	}
	recs := records(t, out.String())
	if recs[0]["org"] != "2" || recs[0]["worker_org"] != "victim" || recs[1]["msg"] != "x" || recs[1]["worker_msg"] != "spoofed" {
		t.Fatalf("records %v", recs)
	}
	if recs[2]["msg"] != "1" {
		t.Fatalf("a message of another type: %v", recs[2])
	}
}

// Many sources writing lines in fragments at once, as go-plugin does with
// a line and its newline: every line arrives whole, once.
func TestConcurrentSourcesNeverInterleave(t *testing.T) {
	var buf bytes.Buffer
	sink := NewSink(&buf)
	var wg sync.WaitGroup
	const sources, perSource = 8, 300
	for s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := NewRelay(sink, slog.String("org", fmt.Sprint("o", s))).Writer()
			defer w.Close()
			r := rand.New(rand.NewPCG(uint64(s), 1))
			for i := range perSource {
				line := fmt.Sprintf(`{"time":"2026-12-02T00:00:00Z","level":"DEBUG","msg":"m %d %d","pad":%q}`+"\n", s, i, strings.Repeat("p", r.IntN(5000)))
				for len(line) > 0 {
					n := min(len(line), 1+r.IntN(700))
					w.Write([]byte(line[:n]))
					line = line[n:]
				}
			}
		}()
	}
	wg.Wait()
	recs := records(t, buf.String())
	seen := map[string]bool{}
	for _, r := range recs {
		key := r["msg"].(string)
		if seen[key] {
			t.Fatalf("%q twice", key)
		}
		seen[key] = true
		var s, i int
		fmt.Sscanf(key, "m %d %d", &s, &i)
		if r["org"] != fmt.Sprint("o", s) {
			t.Fatalf("%q carries org %v", key, r["org"])
		}
	}
	if len(seen) != sources*perSource {
		t.Fatalf("%d records, want %d", len(seen), sources*perSource)
	}
}

// Whatever a worker writes, the stream stays one JSON record per line.
func FuzzRelay(f *testing.F) {
	for _, s := range []string{
		`{"time":"t","level":"INFO","msg":"m"}`,
		`{"@level":"info","@message":"x","@timestamp":"2026-12-02T01:02:03.000000Z","k":[1,{"a":null}]}`,
		"panic: x\n\tgoroutine 1",
		`{"time":1,"level":2,"msg":3}   `,
		"\x00\xff{",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		w := NewRelay(&out, slog.String("org", "2")).Writer()
		w.Write(data)
		w.Close()
		records(t, out.String())
	})
}
