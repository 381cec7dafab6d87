package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/soak/schedule"
)

// heldSends is how many messages the finale queues for each held
// organization: they must wait for its relink and then go.
const heldSends = 3

// Final is what the final restart must preserve.
type Final struct {
	// Before is every organization's status just before the SIGKILL.
	Before []state.Snapshot
	// LoggedOut was logged out right before the restart: its cooldown
	// ends at LogoutUntil. LoggedOutJID was its device.
	LoggedOut    Org
	LogoutUntil  time.Time
	LoggedOutJID string
	// Tripped had a Bad MAC trip and was not relinked; TripHold is the
	// storm guard's hold, nil when its trips were too few for one.
	Tripped    Org
	TripHold   *time.Time
	TrippedJID string
}

// Finale leaves two organizations in a hold (one tripped by a Bad MAC
// storm, then one logged out, so that the shorter LOGOUT cooldown is
// still running), queues messages for both, and restarts the supervisor
// with SIGKILL: the restart that gives the supervisor no chance to save
// anything on the way out.
func (d *Driver) Finale(ctx context.Context, plan schedule.Plan, snd *Sender) (Final, error) {
	unlock := d.lock(d.all())
	defer unlock()
	f := Final{LoggedOut: d.orgs[plan.FinalLogout], Tripped: d.orgs[plan.FinalBadMAC]}
	t, err := d.trip(ctx, f.Tripped)
	if err != nil {
		return f, fmt.Errorf("final Bad MAC storm on %s: %w", f.Tripped.ID, err)
	}
	f.TripHold, f.TrippedJID = t.CooldownUntil, t.jid
	before, until, err := d.logOut(ctx, f.LoggedOut)
	if err != nil {
		return f, fmt.Errorf("final LOGOUT of %s: %w", f.LoggedOut.ID, err)
	}
	f.LogoutUntil, f.LoggedOutJID = until, before.JID
	for range heldSends {
		for _, o := range []Org{f.LoggedOut, f.Tripped} {
			if err := snd.Send(ctx, o); err != nil {
				return f, fmt.Errorf("send to held %s: %w", o.ID, err)
			}
		}
	}
	if f.Before, err = d.rig.List(ctx); err != nil {
		return f, err
	}
	if err := d.bounce(ctx, schedule.RestartKill); err != nil {
		return f, fmt.Errorf("final restart: %w", err)
	}
	return f, nil
}

// Release relinks the two held organizations once their holds end, so
// that the messages queued for them go out.
func (d *Driver) Release(ctx context.Context, f Final) error {
	return d.each([]Org{f.LoggedOut, f.Tripped}, func(o Org) error {
		if o == f.LoggedOut {
			if err := d.startAfterHold(ctx, o, f.LogoutUntil); err != nil {
				return err
			}
			_, err := d.scan(ctx, o, f.LoggedOutJID, linkTimeout)
			return err
		}
		timeout := linkTimeout
		if f.TripHold != nil {
			timeout += time.Until(*f.TripHold)
		}
		_, err := d.scan(ctx, o, f.TrippedJID, timeout)
		return err
	})
}
