package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// options are what a command takes besides its arguments.
type options struct {
	config string
	wait   bool
	json   bool
	// proxy is start's -proxy, nil when not given.
	proxy *string
	// lines and logFile are logs' -n and -log.
	lines   int
	logFile string
	in      io.Reader
	out     io.Writer
	// errOut takes what is said beside the result: warnings about the
	// input, a broadcast left running on Ctrl-C.
	errOut io.Writer
}

// atLeastTwo in operate's table: an organization and one or more numbers.
const atLeastTwo = -2

// operate runs one operator command against the status API of the daemon
// that the same config describes. A refusal that names an HTTP route is
// told as the CLI command that fits.
func operate(ctx context.Context, cmd string, args []string, o options) error {
	err := operateAPI(ctx, cmd, args, o)
	if err != nil && len(args) > 0 {
		err = withCLIHint(err, args[0])
	}
	return err
}

func operateAPI(ctx context.Context, cmd string, args []string, o options) error {
	want := map[string]int{"status": -1, "qr": 1, "start": 1, "stop": 1, "logout": 1, "clear": 1, "delete": 1,
		"pair-phone": 2, "send": 3, "broadcast": 3, "cancel": 2, "check": atLeastTwo, "logs": 1, "move": 2, "drain": 1}
	n, ok := want[cmd]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if (n >= 0 && len(args) != n) || (n == -1 && len(args) > 1) || (n == atLeastTwo && len(args) < 2) {
		return usageError{fmt.Sprintf("wrong number of arguments (%d)", len(args))}
	}
	if len(args) > 0 && cmd != "drain" { // drain's argument is a node
		if err := orgid.Validate(args[0]); err != nil {
			return err
		}
	}
	if cmd == "logs" && o.lines < 1 {
		return usageError{fmt.Sprintf("-n %d: logs prints at least 1 record", o.lines)}
	}
	if cmd == "logs" && o.logFile != "" {
		// A log file given needs neither the config nor the daemon.
		return logs(ctx, args[0], o)
	}
	cfg, err := config.Load(o.config)
	if err != nil {
		return err
	}
	if cmd == "logs" {
		return logs(ctx, args[0], o)
	}
	key, err := cfg.APIKey()
	if err != nil {
		return err
	}
	c := apiclient.New(cfg.API.Listen, key)
	out := o.out
	switch cmd {
	case "send":
		return send(ctx, c, args, o.wait, o.json, out)
	case "broadcast":
		return broadcast(ctx, c, args, regionOf(cfg, args[0]), o)
	case "check":
		// Up to 500 numbers at a paced query a second for every 50.
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		return check(ctx, c, args, o.json, out)
	case "qr":
		return qr(ctx, c, args[0], o.json, out)
	case "move":
		return moveOrg(ctx, c, args[0], args[1], out)
	case "drain":
		return drain(ctx, c, args[0], out)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	var snap state.Snapshot
	switch cmd {
	case "status":
		return status(ctx, c, args, o.json, out, o.errOut)
	case "cancel":
		return cancelBroadcast(ctx, c, args[0], args[1], o.json, out)
	case "start":
		if o.proxy != nil {
			px := *o.proxy
			if px == "-" {
				// From standard input: a password on the command line
				// shows in ps and in the shell's history.
				if px, err = firstLine(o.in); err != nil {
					return fmt.Errorf("read the proxy URL from standard input: %w", err)
				}
			}
			snap, err = c.StartWith(ctx, args[0], statusapi.StartRequest{Proxy: &px})
		} else {
			snap, err = c.Start(ctx, args[0])
		}
	case "stop":
		snap, err = c.Stop(ctx, args[0])
	case "logout":
		snap, err = c.Logout(ctx, args[0])
	case "clear":
		snap, err = c.Clear(ctx, args[0])
	case "delete":
		if err := c.Delete(ctx, args[0]); err != nil {
			return err
		}
		if o.json {
			return printJSON(out, map[string]any{"organization_id": args[0], "deleted": true})
		}
		_, err = fmt.Fprintf(out, "%s deleted (its session was archived)\n", args[0])
		return err
	case "pair-phone":
		code, err := c.PairPhone(ctx, args[0], args[1])
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(out, map[string]string{"organization_id": args[0], "code": code})
		}
		_, err = fmt.Fprintf(out, "On the phone: WhatsApp > Linked devices > Link with phone number, then enter %s\n", code)
		return err
	}
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(out, snap)
	}
	_, err = fmt.Fprintln(out, actionLine(cmd, snap, time.Now()))
	return err
}

// regionOf is the default_country the daemon reads org's numbers with, so
// that the CLI sees two spellings of one number as the daemon will.
func regionOf(cfg config.Config, org string) string {
	if r, ok := cfg.DefaultCountries()[org]; ok {
		return r
	}
	return cfg.Messages.DefaultCountry
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// firstLine reads one line, without its line end.
func firstLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}
