package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/soak/wait"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// Bounds on the supervisor's steps, generous next to the soak config's
// timings (a worker starts and shows a QR within a second or two).
const (
	linkTimeout      = 30 * time.Second
	reconnectTimeout = 30 * time.Second
	callTimeout      = 10 * time.Second
)

// start calls POST /v1/orgs/{id}/start.
func (d *Driver) start(ctx context.Context, o Org) (state.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	s, err := d.rig.API.Start(ctx, o.ID)
	if err != nil {
		return s, fmt.Errorf("start: %w", err)
	}
	return s, nil
}

// scan waits for o's QR, scans it with o's phone and waits until o is
// connected as a device other than old; it returns the new JID. A QR that
// rotated before the scan is scanned again in its new form.
func (d *Driver) scan(ctx context.Context, o Org, old string, timeout time.Duration) (string, error) {
	var jid, scanned string
	err := wait.For(ctx, timeout, "a link by QR", func() error {
		s, err := d.rig.Status(ctx, o.ID)
		if err != nil {
			return err
		}
		switch s.Status {
		case state.Connected:
			if s.JID != old && s.WorkerPID != 0 && strings.HasPrefix(s.JID, o.Phone+":") {
				jid = s.JID
				return nil
			}
		case state.QRRequired:
			if s.QRCode != "" && s.QRCode != scanned {
				scanned = s.QRCode
				if err := d.rig.Phone.Scan(ctx, s.QRCode, o.Phone); err != nil {
					return err
				}
			}
		case state.LoggedOut, state.Replaced, state.Banned, state.Failed, state.Stopped:
			return wait.Fatal(fmt.Errorf("%s while linking (last event %s, error %q)", s.Status, s.LastEvent, s.LastError))
		}
		return fmt.Errorf("status %s, jid %q (last event %s, error %q)", s.Status, s.JID, s.LastEvent, s.LastError)
	})
	return jid, err
}

// staleConnected is what a status of connected without a worker means: a
// status saved by the previous supervisor, shown before this one acted on it.
const staleConnected = "status: after a supervisor restart, an organization was reported connected " +
	"with no worker_pid (the previous lifetime's saved status, served before the boot restored it)"

// reconnected waits until o is connected again as jid by a worker other
// than oldPID: a crash or a restart must keep the link, so a QR is a
// lost session.
func (d *Driver) reconnected(ctx context.Context, o Org, jid string, oldPID int) error {
	return wait.For(ctx, reconnectTimeout, "the same device connected again", func() error {
		s, err := d.rig.Status(ctx, o.ID)
		if err != nil {
			return err
		}
		switch {
		case s.Status == state.Connected && s.WorkerPID == 0:
			d.journal.found(staleConnected)
		case s.Status == state.Connected && s.WorkerPID != oldPID && s.JID == jid:
			return nil
		case s.Status == state.Connected && s.JID != jid:
			return wait.Fatal(fmt.Errorf("connected as %s, was %s", s.JID, jid))
		case s.Status == state.QRRequired || s.Status == state.LoggedOut || s.Status == state.Failed:
			return wait.Fatal(fmt.Errorf("the session was lost: %s (last event %s, error %q)", s.Status, s.LastEvent, s.LastError))
		}
		return fmt.Errorf("status %s, pid %d (last event %s, error %q)", s.Status, s.WorkerPID, s.LastEvent, s.LastError)
	})
}

// connected reads o's status and requires it connected: every event
// starts from there, since the one before ended there.
func (d *Driver) connected(ctx context.Context, o Org) (state.Snapshot, error) {
	s, err := d.rig.Status(ctx, o.ID)
	if err != nil {
		return s, err
	}
	if s.Status != state.Connected {
		return s, fmt.Errorf("%s before the event, not connected (last event %s, error %q)", s.Status, s.LastEvent, s.LastError)
	}
	return s, nil
}

// startAfterHold waits until the hold ending at until is over and a start
// is taken. Before until every start must be refused with 409 cooldown:
// that is the hold being in force.
func (d *Driver) startAfterHold(ctx context.Context, o Org, until time.Time) error {
	return wait.For(ctx, time.Until(until)+linkTimeout, "a start after the cooldown", func() error {
		_, err := d.start(ctx, o)
		answered := time.Now()
		switch {
		case err == nil && answered.Before(until):
			return wait.Fatal(fmt.Errorf("a start %s before cooldown_until %s was taken", until.Sub(answered).Round(time.Millisecond), until.Format(time.RFC3339Nano)))
		case err == nil:
			return nil
		case apiclient.IsCode(err, "cooldown"):
			var ae *apiclient.APIError
			if errors.As(err, &ae) && ae.RetryAfter <= 0 {
				return wait.Fatal(fmt.Errorf("409 cooldown without Retry-After: %w", err))
			}
		}
		return err
	})
}
