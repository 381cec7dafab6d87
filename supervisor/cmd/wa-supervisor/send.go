package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/phone"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// pollEvery is how often send -wait and broadcast look at progress.
const pollEvery = time.Second

// send queues one text; with wait, it follows the message until it is sent
// (or delivered, read) or failed. asJSON prints the message object, the
// final one with wait, instead of its "ID STATUS" lines.
func send(ctx context.Context, c *apiclient.Client, args []string, wait, asJSON bool, out io.Writer) error {
	org, to, text := args[0], args[1], args[2]
	m, err := c.Send(ctx, org, to, text, "")
	if err != nil {
		return err
	}
	if !asJSON {
		fmt.Fprintf(out, "%s %s\n", m.ID, m.Status)
	}
	for wait && (m.Status == "queued" || m.Status == "sending") {
		time.Sleep(pollEvery)
		if m, err = c.Message(ctx, org, m.ID); err != nil {
			return err
		}
	}
	if asJSON {
		if err := printJSON(out, m); err != nil {
			return err
		}
	}
	if !wait {
		return nil
	}
	if m.Status == "failed" {
		return fmt.Errorf("message %s failed: %s", m.ID, m.Reason)
	}
	if asJSON {
		return nil
	}
	_, err = fmt.Fprintf(out, "%s %s\n", m.ID, m.Status)
	return err
}

// interrupted ends a command that Ctrl-C stopped after it said so: the
// exit status is the shell's 130, and there is no error left to print.
type interrupted struct{}

func (interrupted) Error() string { return "interrupted" }

// broadcast sends text to the numbers in a file (or standard input) and
// prints the job's progress until it is done or cancelled. Ctrl-C stops the
// following, not the job, and says so.
func broadcast(ctx context.Context, c *apiclient.Client, args []string, region string, o options) error {
	org, file, text := args[0], args[1], args[2]
	entries, err := readNumbers(file, o.in)
	if err != nil {
		return err
	}
	for _, d := range duplicates(entries, region) {
		fmt.Fprintf(o.errOut, "%s: %s\n", file, d)
	}
	numbers := make([]string, len(entries))
	for i, e := range entries {
		numbers[i] = e.text
	}
	b, err := c.CreateBroadcast(ctx, org, numbers, text, "")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	return followBroadcast(ctx, c, org, b, pollEvery, o)
}

// followBroadcast prints b's progress at every change until the job ends,
// looking every poll; a cancelled ctx (Ctrl-C) leaves the job running.
func followBroadcast(ctx context.Context, c *apiclient.Client, org string, b statusapi.BroadcastBody, poll time.Duration, o options) error {
	if !o.json {
		fmt.Fprintf(o.out, "broadcast %s: %d recipients\n", b.ID, b.Total)
	}
	last := ""
	for {
		line := progress(b)
		if o.json {
			raw, err := json.Marshal(b)
			if err != nil {
				return err
			}
			line = string(raw)
		}
		if line != last {
			fmt.Fprintln(o.out, line)
			last = line
		}
		switch b.Status {
		case "done":
			return nil
		case "cancelled":
			return fmt.Errorf("broadcast %s was cancelled", b.ID)
		}
		next, err := b, error(nil)
		select {
		case <-ctx.Done():
		case <-time.After(poll):
			next, err = c.Broadcast(ctx, org, b.ID)
		}
		if ctx.Err() != nil {
			fmt.Fprintf(o.errOut, "stopped following %s; the broadcast goes on ('wa-supervisor cancel %s %[1]s' stops it)\n", b.ID, org)
			return interrupted{}
		}
		if err != nil {
			return err
		}
		b = next
	}
}

func progress(b statusapi.BroadcastBody) string {
	return fmt.Sprintf("%s: sent %d/%d, failed %d, pending %d", b.Status, b.Sent, b.Total, b.Failed, b.Pending)
}

// cancelBroadcast cancels a job: its unsent messages fail.
func cancelBroadcast(ctx context.Context, c *apiclient.Client, org, job string, asJSON bool, out io.Writer) error {
	b, err := c.CancelBroadcast(ctx, org, job)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, b)
	}
	_, err = fmt.Fprintf(out, "broadcast %s %s\n", b.ID, progress(b))
	return err
}

// entry is one number of a broadcast file and the line it is on.
type entry struct {
	line int
	text string
}

// readNumbers reads one number per line; blank lines and lines starting
// with # are skipped. The API names any number it refuses.
func readNumbers(file string, stdin io.Reader) ([]entry, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var entries []entry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		entries = append(entries, entry{n, line})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s holds no numbers", file)
	}
	return entries, nil
}

// duplicates names each number that an earlier line already holds, in
// the same spelling or another one the daemon reads as the same number
// (with region, the organization's default_country). The daemon sends
// each number once; this says which lines that dropped, since a repeated
// line is often a sign of a list merged twice or a mistyped neighbour.
// A number the daemon would refuse is left to its refusal.
func duplicates(entries []entry, region string) []string {
	first := map[string]entry{}
	var out []string
	for _, e := range entries {
		digits, err := phone.Parse(e.text, region)
		if err != nil {
			continue
		}
		f, seen := first[digits]
		if !seen {
			first[digits] = e
			continue
		}
		if f.text == e.text {
			out = append(out, fmt.Sprintf("line %d: %s repeats line %d; it is sent once", e.line, e.text, f.line))
		} else {
			out = append(out, fmt.Sprintf("line %d: %s is %s of line %d (+%s); it is sent once", e.line, e.text, f.text, f.line, digits))
		}
	}
	return out
}
