package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// actionLine is what start, stop, logout and clear print: the
// organization's status after the action and, where the operator has a
// next step, the command for it, on one line as send prints its own.
func actionLine(cmd string, s state.Snapshot, now time.Time) string {
	org := s.OrganizationID
	line := org + " " + string(s.Status)
	// The event the command itself caused ("stop") is no news.
	if why := reason(s); why != "" && why != cmd {
		line += ": " + why
	}
	qrSoon := fmt.Sprintf("a QR follows: run 'wa-supervisor qr %s'", org)
	switch {
	case s.Status == state.Connected:
		line += " as " + s.JID
	case s.Status == state.QRRequired:
		line += fmt.Sprintf(" (run 'wa-supervisor qr %s')", org)
	case s.Status == state.Restoring:
		line += " (resuming its linked session)"
	case s.Status == state.Cooldown || s.Status == state.Banned:
		line += fmt.Sprintf(" (held for %s)", cooldownLeft(s.CooldownUntil, now))
	case s.Status == state.Failed:
		line += fmt.Sprintf(" (fix the cause, then 'wa-supervisor start %s')", org)
	case cmd == "stop" || cmd == "logout":
		line += fmt.Sprintf(" ('wa-supervisor start %s' starts it again)", org)
	case s.JID == "" && (s.Status == state.Queued || s.Status == state.Starting):
		line += " (" + qrSoon + ")"
	}
	return line
}

// reason is why an organization is not working, for the status table and
// the action lines: the worker's last error while it fails or retries, the
// event that stopped it otherwise. A connected organization has none: an
// error it got past is history, which status -json still shows.
func reason(s state.Snapshot) string {
	if wait := waitingFor[s.WaitingFor]; s.Status == state.Queued && wait != "" {
		if s.RetryCount > 0 && s.LastError != "" {
			return fmt.Sprintf("failed %s: %s; %s", times(s.RetryCount), brief(s.LastError), wait)
		}
		return wait
	}
	switch s.Status {
	case state.Failed, state.Queued, state.Disconnected, state.Starting:
		if s.LastError == "" {
			if s.Status == state.Failed {
				// A daemon older than last_error's commit: the event at least.
				return s.LastEvent
			}
			break
		}
		why := brief(s.LastError)
		if s.RetryCount > 0 {
			why = fmt.Sprintf("failed %s: %s", times(s.RetryCount), why)
		}
		return why
	case state.Stopped, state.LoggedOut, state.Replaced, state.Banned, state.Cooldown:
		return s.LastEvent
	}
	return ""
}

// waitingFor words the start queue's waiting_for. An admitted start
// (start_gap) is due within seconds and needs no word.
var waitingFor = map[string]string{
	"max_live":            "waiting for a slot: workers.max_live workers are live",
	"max_live_per_egress": "waiting for a slot on its egress: workers.max_live_per_egress are live there",
	"turn":                "waiting its turn: workers start one at a time, workers.start_gap apart",
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

var (
	lookupFailed = regexp.MustCompile(`lookup ([^ :]+)(?: on \S+)?: (.+)$`)
	dialFailed   = regexp.MustCompile(`dial tcp ([^ ]+): (?:connect: )?(.+)$`)
)

// brief turns a worker's error chain into the cause an operator acts on:
// "start session: start 2: connect for QR pairing: failed to dial whatsapp
// web websocket: ... dial tcp: lookup web.whatsapp.com on 10.0.0.53:53: no
// such host" says that this host cannot reach WhatsApp at all, which is the
// usual first-run failure (no network, a firewall, a sandboxed build box).
// An error it does not recognise is shown whole.
func brief(err string) string {
	target := "WhatsApp"
	if !strings.Contains(err, "whatsapp web websocket") && !strings.Contains(err, "whatsapp.net") && !strings.Contains(err, "web.whatsapp.com") {
		target = ""
	}
	cause := ""
	if m := lookupFailed.FindStringSubmatch(err); m != nil {
		cause = fmt.Sprintf("DNS lookup of %s failed (%s)", m[1], m[2])
	} else if m := dialFailed.FindStringSubmatch(err); m != nil {
		cause = fmt.Sprintf("connection to %s failed (%s)", m[1], m[2])
	}
	switch {
	case cause == "":
		return err
	case target != "":
		return "cannot reach " + target + ": " + cause
	}
	return cause
}

// withCLIHint puts a CLI command where the API's sentence names an HTTP
// route, since the operator is at a shell, not at curl.
func withCLIHint(err error, org string) error {
	var ae *apiclient.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Code {
	case "unknown_org":
		return fmt.Errorf("organization %s is not registered; run 'wa-supervisor start %s' to register it", org, org)
	}
	return err
}
