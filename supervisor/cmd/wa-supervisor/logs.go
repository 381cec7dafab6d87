package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// journalUnit is the systemd unit systemd/wa-sidecar.service installs;
// under it the supervisor's standard error goes to journald.
const journalUnit = "wa-sidecar"

// maxLogLine bounds one log line; a worker's panic trace is relayed as
// one record per line, so a longer line is not the supervisor's.
const maxLogLine = 1 << 20

// logs prints the last o.lines log records about org. The supervisor
// writes its JSON log to standard error, which is a file only where the
// operator sent it: -log names that file; without it, journald is read
// when the systemd unit runs the daemon.
func logs(ctx context.Context, org string, o options) error {
	if o.logFile != "" {
		f, err := os.Open(o.logFile)
		if err != nil {
			return fmt.Errorf("read the log: %w", err)
		}
		defer f.Close()
		return printLastLines(f, org, o.lines, o.out, o.logFile)
	}
	if _, err := exec.LookPath("journalctl"); err != nil {
		return errNoLogSource
	}
	cmd := exec.CommandContext(ctx, "journalctl", "-u", journalUnit, "-o", "cat", "--no-pager")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("journalctl: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("journalctl: %w", err)
	}
	found, err := lastLines(pipe, org, o.lines)
	io.Copy(io.Discard, pipe) // so that journalctl ends, whatever stopped the scan
	if werr := cmd.Wait(); werr != nil && err == nil {
		return fmt.Errorf("journalctl -u %s: %w: %s", journalUnit, werr, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return fmt.Errorf("journalctl -u %s: %w", journalUnit, err)
	}
	if found.records == 0 {
		// journalctl answers nothing, not an error, for a unit that
		// never ran here.
		return errNoLogSource
	}
	return writeLines(o.out, found, org, "journald unit "+journalUnit)
}

var errNoLogSource = errors.New("no log source found: the supervisor logs to its standard error, and journald has no " +
	journalUnit + " unit here; if you sent that output to a file (make run 2>sup.log), give it with -log FILE")

func printLastLines(r io.Reader, org string, n int, out io.Writer, source string) error {
	found, err := lastLines(r, org, n)
	if err != nil {
		return fmt.Errorf("read %s: %w", source, err)
	}
	return writeLines(out, found, org, source)
}

func writeLines(out io.Writer, found logTail, org, source string) error {
	if len(found.lines) == 0 {
		return fmt.Errorf("%s holds %d log records, none about organization %s", source, found.records, org)
	}
	for _, l := range found.lines {
		if _, err := fmt.Fprintln(out, l); err != nil {
			return err
		}
	}
	return nil
}

// logTail is what a read of a log found: the last lines about the
// organization, and how many JSON records the log held in all.
type logTail struct {
	lines   []string
	records int
}

// lastLines keeps the last n JSON records of r whose org field is org, as
// written; lines that are not JSON objects (a daemon's start banner, a
// journald note) are skipped. Only n lines are held at a time, so a log
// of any size reads in bounded memory.
func lastLines(r io.Reader, org string, n int) (logTail, error) {
	var t logTail
	ring := make([]string, 0, n)
	next := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	for sc.Scan() {
		var rec struct {
			Org any `json:"org"`
		}
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &rec) != nil {
			continue
		}
		t.records++
		if fmt.Sprint(rec.Org) != org || rec.Org == nil || n <= 0 {
			continue
		}
		if len(ring) < n {
			ring = append(ring, string(line))
			continue
		}
		ring[next] = string(line)
		next = (next + 1) % n
	}
	t.lines = append(ring[next:len(ring):len(ring)], ring[:next]...)
	return t, sc.Err()
}
