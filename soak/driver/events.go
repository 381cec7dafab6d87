package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/soak/rig"
	"github.com/wa-sidecar/wa-sidecar/soak/schedule"
	"github.com/wa-sidecar/wa-sidecar/soak/wait"
)

// emulatorTimeout bounds retrying a control call the emulator refused
// because the device was between two connections.
const emulatorTimeout = 10 * time.Second

// badMAC sends a Bad MAC storm of badmac.limit corrupted messages, waits
// for the trip, and relinks by scanning the new QR (after the storm guard's
// hold, when the organization has tripped often enough for one).
func (d *Driver) badMAC(ctx context.Context, o Org) error {
	s, err := d.trip(ctx, o)
	if err != nil {
		return err
	}
	timeout := linkTimeout
	if s.CooldownUntil != nil {
		timeout += time.Until(*s.CooldownUntil)
	}
	_, err = d.scan(ctx, o, s.jid, timeout)
	return err
}

// tripped is the status right after a trip, with the JID it had before.
type tripped struct {
	state.Snapshot
	jid string
}

// trip sends the storm and waits until the trip is counted.
func (d *Driver) trip(ctx context.Context, o Org) (tripped, error) {
	before, err := d.connected(ctx, o)
	if err != nil {
		return tripped{}, err
	}
	err = wait.For(ctx, emulatorTimeout, "the emulator to deliver the storm", func() error {
		return d.rig.Phone.BadMAC(ctx, o.Phone, rig.BadMACLimit)
	})
	if err != nil {
		return tripped{}, err
	}
	d.journal.disrupted(o.ID)
	var after state.Snapshot
	err = wait.For(ctx, linkTimeout, "the Bad MAC trip", func() error {
		after, err = d.rig.Status(ctx, o.ID)
		if err != nil {
			return err
		}
		if after.BadMAC.Trips != before.BadMAC.Trips+1 {
			return fmt.Errorf("trips %d, was %d (count %d, status %s)", after.BadMAC.Trips, before.BadMAC.Trips, after.BadMAC.Count, after.Status)
		}
		return nil
	})
	if err != nil {
		return tripped{}, err
	}
	d.journal.tripped(o.ID)
	d.journal.event(schedule.BadMAC)
	return tripped{Snapshot: after, jid: before.JID}, nil
}

// killWorker kill -9s o's worker and waits until a new one is connected on
// the same auth store, without a QR.
func (d *Driver) killWorker(ctx context.Context, o Org) error {
	s, err := d.connected(ctx, o)
	if err != nil {
		return err
	}
	if err := d.rig.KillWorker(s.WorkerPID); err != nil {
		return err
	}
	d.journal.disrupted(o.ID)
	d.journal.event(schedule.WorkerKill)
	return d.reconnected(ctx, o, s.JID, s.WorkerPID)
}

// logout has WhatsApp log o's device out, checks that the cooldown holds,
// waits it out, and relinks by QR.
func (d *Driver) logout(ctx context.Context, o Org) error {
	s, until, err := d.logOut(ctx, o)
	if err != nil {
		return err
	}
	if err := d.startAfterHold(ctx, o, until); err != nil {
		return err
	}
	_, err = d.scan(ctx, o, s.JID, linkTimeout)
	return err
}

// logOut sends the LOGOUT and waits for logged_out with its cooldown; it
// returns the status before and the cooldown's end.
func (d *Driver) logOut(ctx context.Context, o Org) (state.Snapshot, time.Time, error) {
	before, err := d.connected(ctx, o)
	if err != nil {
		return before, time.Time{}, err
	}
	err = wait.For(ctx, emulatorTimeout, "the emulator to log the device out", func() error {
		return d.rig.Phone.Logout(ctx, o.Phone)
	})
	if err != nil {
		return before, time.Time{}, err
	}
	d.journal.disrupted(o.ID)
	var until time.Time
	err = wait.For(ctx, linkTimeout, "logged_out with a cooldown", func() error {
		s, err := d.rig.Status(ctx, o.ID)
		if err != nil {
			return err
		}
		if s.Status != state.LoggedOut || s.CooldownUntil == nil {
			return fmt.Errorf("status %s, cooldown_until %v (last event %s)", s.Status, s.CooldownUntil, s.LastEvent)
		}
		until = *s.CooldownUntil
		return nil
	})
	if err != nil {
		return before, time.Time{}, err
	}
	d.journal.loggedOut(o.ID)
	d.journal.event(schedule.Logout)
	return before, until, nil
}

// restart stops the supervisor (SIGTERM, or SIGKILL as a crash would),
// starts it again on the same state directory, and waits until every
// organization is connected again as the same device.
func (d *Driver) restart(ctx context.Context, kind schedule.Kind) error {
	before, err := d.rig.List(ctx)
	if err != nil {
		return err
	}
	if err := d.bounce(ctx, kind); err != nil {
		return err
	}
	return d.each(d.orgs, func(o Org) error {
		for _, s := range before {
			if s.OrganizationID == o.ID {
				return d.reconnected(ctx, o, s.JID, s.WorkerPID)
			}
		}
		return fmt.Errorf("not listed before the restart")
	})
}

// bounce stops the supervisor as kind says and starts it again.
func (d *Driver) bounce(ctx context.Context, kind schedule.Kind) error {
	stop := d.rig.StopSupervisor
	if kind == schedule.RestartKill {
		stop = d.rig.KillSupervisor
	}
	if err := stop(ctx); err != nil {
		return err
	}
	ids := make([]string, len(d.orgs))
	for i, o := range d.orgs {
		ids[i] = o.ID
	}
	d.journal.disrupted(ids...)
	d.journal.event(kind)
	return d.rig.StartSupervisor(ctx)
}

// pause holds every organization, all connected, for length: the
// supervisor at rest between disruptions, with only the send stream going.
func (d *Driver) pause(ctx context.Context, length time.Duration) error {
	for _, o := range d.orgs {
		if _, err := d.connected(ctx, o); err != nil {
			return fmt.Errorf("%s: %w", o.ID, err)
		}
	}
	d.quiet.Store(true)
	defer d.quiet.Store(false)
	// Pacing: the pause is the event.
	select {
	case <-ctx.Done():
	case <-time.After(length):
	}
	return nil
}
