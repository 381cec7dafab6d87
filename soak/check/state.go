// Package check holds the soak's verdicts on what the run left behind: the
// organizations' state after the final restart, every accepted message,
// the webhooks and the archived auth directories. Each check returns its
// findings, one sentence each; none means it passed.
package check

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/soak/driver"
	"github.com/wa-sidecar/wa-sidecar/soak/rig"
	"github.com/wa-sidecar/wa-sidecar/soak/wait"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// settleTimeout bounds how long a restored organization may take to
// connect after the restart.
const settleTimeout = 30 * time.Second

// State checks, as soon as the restarted supervisor answers, that every
// organization is what the schedule last made it: the logged-out one still
// logged out with the same cooldown, which still refuses a start; the
// tripped one held by the storm guard until the same instant, or waiting
// for a QR; every other one connected again as the same device without a
// QR; and every Bad MAC trip still counted.
func State(ctx context.Context, r *rig.Rig, f driver.Final, j *driver.Journal) []string {
	after, err := r.List(ctx)
	if err != nil {
		return []string{fmt.Sprintf("state: %v", err)}
	}
	now := time.Now()
	var out []string
	for _, b := range f.Before {
		org := b.OrganizationID
		a, ok := find(after, org)
		if !ok {
			out = append(out, fmt.Sprintf("state: %s is gone after the final restart", org))
			continue
		}
		if want := j.Trips(org); a.BadMAC.Trips != want {
			out = append(out, fmt.Sprintf("state: %s shows %d Bad MAC trips after the final restart, the run caused %d", org, a.BadMAC.Trips, want))
		}
		switch org {
		case f.LoggedOut.ID:
			out = append(out, held(ctx, r, a, state.LoggedOut, &f.LogoutUntil, now)...)
		case f.Tripped.ID:
			if f.TripHold != nil && f.TripHold.After(now) {
				out = append(out, held(ctx, r, a, state.Cooldown, f.TripHold, now)...)
			} else if err := awaitQR(ctx, r, org); err != nil {
				out = append(out, fmt.Sprintf("state: %s, tripped and not relinked: %v", org, err))
			}
		default:
			if err := awaitConnected(ctx, r, org, b.JID); err != nil {
				out = append(out, fmt.Sprintf("state: %s, connected before the final restart: %v", org, err))
			}
		}
	}
	return out
}

func find(all []state.Snapshot, org string) (state.Snapshot, bool) {
	for _, s := range all {
		if s.OrganizationID == org {
			return s, true
		}
	}
	return state.Snapshot{}, false
}

// held checks that a hold set before the restart is still in force: the
// same status and end, and a start refused with 409 cooldown.
func held(ctx context.Context, r *rig.Rig, s state.Snapshot, want state.Status, until *time.Time, now time.Time) []string {
	org := s.OrganizationID
	var out []string
	if s.Status != want {
		out = append(out, fmt.Sprintf("state: %s is %s after the final restart, was %s with a hold until %s", org, s.Status, want, until.Format(time.RFC3339Nano)))
	}
	if s.CooldownUntil == nil || s.CooldownUntil.Sub(*until).Abs() > time.Millisecond {
		out = append(out, fmt.Sprintf("state: %s's cooldown_until is %v after the final restart, was %s", org, s.CooldownUntil, until.Format(time.RFC3339Nano)))
	}
	if !until.After(now) {
		out = append(out, fmt.Sprintf("state: %s's hold ended before the restarted supervisor answered; the check proves nothing (make the cooldown longer)", org))
		return out
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := r.API.Start(cctx, org)
	var ae *apiclient.APIError
	if time.Now().Before(*until) && (!errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != "cooldown" || ae.RetryAfter <= 0) {
		out = append(out, fmt.Sprintf("state: a start of %s during its hold after the final restart answered %v, not 409 cooldown with Retry-After", org, err))
	}
	return out
}

func awaitQR(ctx context.Context, r *rig.Rig, org string) error {
	return wait.For(ctx, settleTimeout, "a QR", func() error {
		s, err := r.Status(ctx, org)
		if err != nil {
			return err
		}
		if s.JID != "" {
			return wait.Fatal(fmt.Errorf("still linked as %s", s.JID))
		}
		if s.Status != state.QRRequired {
			return fmt.Errorf("status %s (last event %s)", s.Status, s.LastEvent)
		}
		return nil
	})
}

// awaitConnected waits until org is connected as jid by a worker; a
// connected status without a worker is the previous lifetime's, stale.
func awaitConnected(ctx context.Context, r *rig.Rig, org, jid string) error {
	stale := false
	err := wait.For(ctx, settleTimeout, "connected as "+jid, func() error {
		s, err := r.Status(ctx, org)
		if err != nil {
			return err
		}
		switch {
		case s.Status == state.Connected && s.WorkerPID == 0:
			stale = true
		case s.Status == state.Connected && s.JID == jid:
			return nil
		case s.Status == state.QRRequired || s.Status == state.LoggedOut || s.Status == state.Failed || (s.JID != "" && s.JID != jid):
			return wait.Fatal(fmt.Errorf("the session was lost: %s as %q (last event %s, error %q)", s.Status, s.JID, s.LastEvent, s.LastError))
		}
		return fmt.Errorf("status %s (last event %s)", s.Status, s.LastEvent)
	})
	if err == nil && stale {
		return fmt.Errorf("reported connected with no worker_pid right after the restart, before the boot restored it")
	}
	return err
}
