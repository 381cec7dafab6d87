package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// check asks whether numbers are on WhatsApp and prints one line per
// number, or with asJSON the API's answer.
func check(ctx context.Context, c *apiclient.Client, args []string, asJSON bool, out io.Writer) error {
	r, err := c.CheckNumbers(ctx, args[0], args[1:])
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, r)
	}
	for _, res := range r.Results {
		if _, err := fmt.Fprintln(out, checkLine(res)); err != nil {
			return err
		}
	}
	return nil
}

// checkLine is "INPUT on_whatsapp JID CHECKED_AT" or "INPUT
// not_on_whatsapp - CHECKED_AT": words a script can cut.
func checkLine(r statusapi.CheckResult) string {
	answer, jid := "on_whatsapp", r.JID
	if !r.OnWhatsApp {
		answer, jid = "not_on_whatsapp", "-"
	}
	return fmt.Sprintf("%s %s %s %s", r.Input, answer, jid, r.CheckedAt.UTC().Format(time.RFC3339))
}
