package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/mdp/qrterminal/v3"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// options are what a command takes besides its arguments.
type options struct {
	config string
	wait   bool
	in     io.Reader
	out    io.Writer
}

// operate runs one operator command against the status API of the daemon
// that the same config describes.
func operate(ctx context.Context, cmd string, args []string, o options) error {
	want := map[string]int{"status": -1, "qr": 1, "start": 1, "stop": 1, "logout": 1, "clear": 1, "delete": 1,
		"pair-phone": 2, "send": 3, "broadcast": 3}
	n, ok := want[cmd]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if (n >= 0 && len(args) != n) || (n < 0 && len(args) > 1) {
		return usageError{fmt.Sprintf("wrong number of arguments (%d)", len(args))}
	}
	if len(args) > 0 {
		if err := orgid.Validate(args[0]); err != nil {
			return err
		}
	}
	cfg, err := config.Load(o.config)
	if err != nil {
		return err
	}
	key, err := cfg.APIKey()
	if err != nil {
		return err
	}
	c := apiclient.New(cfg.API.Listen, key)
	out := o.out
	switch cmd {
	case "send":
		return send(ctx, c, args, o.wait, out)
	case "broadcast":
		return broadcast(ctx, c, args, o.in, out)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	var snap state.Snapshot
	switch cmd {
	case "status":
		if len(args) == 0 {
			list, err := c.List(ctx)
			if err != nil {
				return err
			}
			return printJSON(out, list)
		}
		snap, err = c.Status(ctx, args[0])
	case "qr":
		snap, err = c.Status(ctx, args[0])
		if err == nil {
			return printQR(out, snap)
		}
	case "start":
		snap, err = c.Start(ctx, args[0])
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
		_, err = fmt.Fprintf(out, "organization %s deleted; its session was archived\n", args[0])
		return err
	case "pair-phone":
		code, err := c.PairPhone(ctx, args[0], args[1])
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "On the phone: WhatsApp > Linked devices > Link with phone number, then enter %s\n", code)
		return err
	}
	if err != nil {
		return err
	}
	return printJSON(out, snap)
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printQR(out io.Writer, s state.Snapshot) error {
	if s.QRCode == "" {
		return fmt.Errorf("organization %s has no QR on offer (status %s)", s.OrganizationID, s.Status)
	}
	qrterminal.GenerateWithConfig(s.QRCode, qrterminal.Config{
		Level: qrterminal.L, Writer: out, HalfBlocks: true,
		BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE, QuietZone: 2,
	})
	if s.QRExpiresAt != nil {
		_, err := fmt.Fprintf(out, "Scan with WhatsApp > Linked devices. This code expires at %s; run again for the next one.\n", s.QRExpiresAt.Local().Format(time.TimeOnly))
		return err
	}
	return nil
}
