package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/mdp/qrterminal/v3"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// qrPollTimeout bounds one look at the status so that a daemon that stopped
// answering ends the command instead of leaving a stale code on screen.
const qrPollTimeout = 10 * time.Second

// clearScreen moves the cursor home and clears the screen, so that a new
// code takes the place of the old one instead of scrolling below it.
const clearScreen = "\x1b[H\x1b[2J"

// qr shows the organization's QR until it is linked; Ctrl-C ends the wait
// with a sentence rather than a dead process's half-drawn screen.
// With asJSON it prints the status object, one line each time the code
// or the status changes, for a program that draws the code itself.
func qr(ctx context.Context, c *apiclient.Client, org string, asJSON bool, out io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	v := view{tty: isTerminal(out), json: asJSON}
	err := followQR(ctx, c, org, tick.C, out, v)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted before organization %s was linked", org)
	}
	return err
}

// followQR looks at the organization's status now and at every tick, shows
// each new QR code, and returns nil once the organization is connected. On
// a terminal a new code replaces the old one; in a log or a pipe the codes
// follow each other, each after a separator line.
func followQR(ctx context.Context, c *apiclient.Client, org string, ticks <-chan time.Time, out io.Writer, v view) error {
	shown := ""                 // the code on screen
	waiting := state.Status("") // the status last reported as JSON while no code was on offer
	said := ""                  // the line last printed while no code was on offer
	for {
		s, err := statusWithin(ctx, c, org)
		if err != nil {
			return err
		}
		if v.json && !noQRWillCome(s.Status) && (s.QRCode != shown || s.Status != waiting) {
			if err := json.NewEncoder(out).Encode(s); err != nil {
				return err
			}
			if s.Status == state.Connected {
				return nil
			}
			shown, waiting = s.QRCode, s.Status
		}
		switch {
		case v.json && !noQRWillCome(s.Status):
		case s.Status == state.Connected:
			_, err := fmt.Fprintf(out, "organization %s is connected as %s\n", org, s.JID)
			return err
		case noQRWillCome(s.Status):
			why := ""
			if r := reason(s); r != "" {
				why = " (" + r + ")"
			}
			return fmt.Errorf("organization %s is %s%s, so no QR will come: run 'wa-supervisor start %s' first", org, s.Status, why, org)
		case s.QRCode != "" && s.QRCode != shown:
			switch {
			case v.tty:
				fmt.Fprint(out, clearScreen)
			case shown != "":
				fmt.Fprintln(out, strings.Repeat("-", 40))
			}
			if err := printQR(out, s); err != nil {
				return err
			}
			shown, said = s.QRCode, ""
		case s.QRCode == "":
			// A start that fails is retried (queued, starting, queued, ...):
			// the reason goes along, so a host that cannot reach WhatsApp
			// says so on the first failure, not after the last.
			line := fmt.Sprintf("organization %s is %s", org, s.Status)
			if r := reason(s); r != "" {
				line += " (" + r + ")"
			}
			if line != said {
				if _, err := fmt.Fprintf(out, "%s; waiting for a QR\n", line); err != nil {
					return err
				}
				said = line
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticks:
		}
	}
}

// view is how followQR shows what it sees: redrawn on a terminal, one
// after another elsewhere, or as JSON lines.
type view struct{ tty, json bool }

func statusWithin(ctx context.Context, c *apiclient.Client, org string) (state.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, qrPollTimeout)
	defer cancel()
	return c.Status(ctx, org)
}

// noQRWillCome reports the statuses that the daemon leaves only when an
// operator acts (or a ban expires), so waiting for a code would be endless.
func noQRWillCome(s state.Status) bool {
	switch s {
	case state.LoggedOut, state.Replaced, state.Banned, state.Failed, state.Stopped:
		return true
	}
	return false
}

func printQR(out io.Writer, s state.Snapshot) error {
	qrterminal.GenerateWithConfig(s.QRCode, qrterminal.Config{
		Level: qrterminal.L, Writer: out, HalfBlocks: true,
		BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE, QuietZone: 2,
	})
	expiry := ""
	if s.QRExpiresAt != nil {
		expiry = fmt.Sprintf(" This code expires at %s.", s.QRExpiresAt.Local().Format(time.TimeOnly))
	}
	_, err := fmt.Fprintf(out, "Scan with WhatsApp > Linked devices.%s Waiting for the link (Ctrl-C to stop).\n", expiry)
	return err
}

// isTerminal reports whether out is a character device, where redrawing in
// place makes sense; a file or a pipe gets the codes one after another.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
