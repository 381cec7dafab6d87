package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// pollEvery is how often send -wait and broadcast look at progress.
const pollEvery = time.Second

// send queues one text; with wait, it follows the message until it is sent
// (or delivered, read) or failed.
func send(ctx context.Context, c *apiclient.Client, args []string, wait bool, out io.Writer) error {
	org, to, text := args[0], args[1], args[2]
	m, err := c.Send(ctx, org, to, text, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s\n", m.ID, m.Status)
	for wait && (m.Status == "queued" || m.Status == "sending") {
		time.Sleep(pollEvery)
		if m, err = c.Message(ctx, org, m.ID); err != nil {
			return err
		}
	}
	if !wait {
		return nil
	}
	if m.Status == "failed" {
		return fmt.Errorf("message %s failed: %s", m.ID, m.Reason)
	}
	_, err = fmt.Fprintf(out, "%s %s\n", m.ID, m.Status)
	return err
}

// broadcast sends text to the numbers in a file (or standard input) and
// prints the job's progress until it is done or cancelled.
func broadcast(ctx context.Context, c *apiclient.Client, args []string, in io.Reader, out io.Writer) error {
	org, file, text := args[0], args[1], args[2]
	numbers, err := readNumbers(file, in)
	if err != nil {
		return err
	}
	b, err := c.CreateBroadcast(ctx, org, numbers, text, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "broadcast %s: %d recipients\n", b.ID, b.Total)
	last := ""
	for {
		line := progress(b)
		if line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		switch b.Status {
		case "done":
			return nil
		case "cancelled":
			return fmt.Errorf("broadcast %s was cancelled", b.ID)
		}
		time.Sleep(pollEvery)
		if b, err = c.Broadcast(ctx, org, b.ID); err != nil {
			return err
		}
	}
}

func progress(b statusapi.BroadcastBody) string {
	return fmt.Sprintf("%s: sent %d/%d, failed %d, pending %d", b.Status, b.Sent, b.Total, b.Failed, b.Pending)
}

// readNumbers reads one number per line; blank lines and lines starting
// with # are skipped. The API names any number it refuses.
func readNumbers(file string, stdin io.Reader) ([]string, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var numbers []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		numbers = append(numbers, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(numbers) == 0 {
		return nil, fmt.Errorf("%s holds no numbers", file)
	}
	return numbers, nil
}
