// Command wa-supervisor runs the wa-sidecar daemon (`serve`) and the
// operator commands that talk to a running daemon's status API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	// The IANA zone database is built in, so that messages.timezone works
	// on a host without tzdata (a minimal container); about 450 KB.
	_ "time/tzdata"
)

const usage = `usage: wa-supervisor [command] [-config FILE] [args]

commands:
  serve              run the daemon (default)
  status [ORG]       show every organization, or one, as a table; with
                     -json, the status objects as the API returns them
  qr ORG             show the organization's QR code in the terminal, redrawn
                     as it rotates, until the organization is connected
  start [-proxy URL] ORG
                     register if new and start or link; -proxy sets the
                     organization's proxy from its next start ("" = direct,
                     - = read it from standard input, out of ps and history)
  stop ORG           stop the worker, keep the session
  logout ORG         unlink the device on WhatsApp, keep an archive
  clear ORG          archive the session and relink (the Bad MAC cure)
  delete ORG         stop and forget the organization (session archived)
  pair-phone ORG PHONE
                     get a code to type on the phone instead of scanning
  send ORG PHONE TEXT
                     queue a text message and print its id; with -wait,
                     wait until it is sent (or failed); PHONE as the API
                     takes it: "+57 300 123 4567", 573001234567, or
                     "(300) 123-4567" with the org's default_country
  broadcast ORG FILE|- TEXT
                     send TEXT to the numbers in FILE (one per line, in the
                     same spellings; - reads standard input) and show
                     progress until done
  check ORG NUMBER...
                     whether the numbers are on WhatsApp (cached answers, or
                     asked through the organization's worker); one line each:
                     NUMBER on_whatsapp|not_on_whatsapp JID|- CHECKED_AT
`

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("wa-supervisor "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	configPath := fs.String("config", "config.toml", "configuration file")
	wait := fs.Bool("wait", false, "send: wait until the message is sent or failed")
	asJSON := fs.Bool("json", false, "status: print the status objects as JSON")
	var proxyURL *string
	fs.Func("proxy", `start: the organization's proxy from its next start ("" makes it direct)`, func(s string) error {
		proxyURL = &s
		return nil
	})
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if cmd == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if cmd == "serve" {
		if len(positional) > 0 {
			fmt.Fprintf(stderr, "wa-supervisor serve: unexpected argument %q\n", positional[0])
			return 2
		}
		err = serve(*configPath, stderr)
	} else {
		err = operate(context.Background(), cmd, positional, options{config: *configPath, wait: *wait, json: *asJSON, proxy: proxyURL, in: stdin, out: stdout})
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "wa-supervisor %s: %v\n%s", cmd, err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "wa-supervisor %s: %v\n", cmd, err)
		return 1
	}
}

// parseInterleaved accepts flags before and after the positional arguments
// (`clear 2 -config x.toml` as well as `clear -config x.toml 2`), which is
// how operators type them.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
