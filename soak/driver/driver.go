// Package driver carries out the soak: it links the organizations, plays
// the schedule's disruptions against the rig while a steady stream of
// sends goes on, leaves two organizations in a hold across a final
// supervisor restart, and writes down in a Journal everything the checks
// need to know.
package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wa-sidecar/wa-sidecar/soak/rig"
	"github.com/wa-sidecar/wa-sidecar/soak/schedule"
)

// Org is one organization and the emulated phone that links it.
type Org struct{ ID, Phone string }

// Orgs names n organizations and their phones.
func Orgs(n int) []Org {
	out := make([]Org, n)
	for i := range out {
		out[i] = Org{ID: fmt.Sprintf("soak%d", i+1), Phone: fmt.Sprintf("5730079154%02d", i+1)}
	}
	return out
}

// Driver plays disruptions. Events on one organization never overlap (each
// holds the organization's lock until it is connected again); events on
// different organizations do; a supervisor restart holds every lock.
type Driver struct {
	rig     *rig.Rig
	orgs    []Org
	journal *Journal
	locks   []sync.Mutex
	// quiet is set during a Quiet pause: every organization connected and
	// no event under way.
	quiet atomic.Bool
	// late counts events skipped because their organizations were busy
	// until after the schedule's end.
	late atomic.Int64
}

// New makes a driver for orgs on r.
func New(r *rig.Rig, orgs []Org) *Driver {
	return &Driver{rig: r, orgs: orgs, journal: newJournal(), locks: make([]sync.Mutex, len(orgs))}
}

// Journal is what the driver did so far.
func (d *Driver) Journal() *Journal { return d.journal }

// Orgs are the driver's organizations.
func (d *Driver) Orgs() []Org { return d.orgs }

// LinkAll registers every organization and links it by QR.
func (d *Driver) LinkAll(ctx context.Context) error {
	return d.each(d.orgs, func(o Org) error {
		if _, err := d.start(ctx, o); err != nil {
			return err
		}
		_, err := d.scan(ctx, o, "", linkTimeout)
		return err
	})
}

// Quiet reports whether the run is in a Quiet pause.
func (d *Driver) Quiet() bool { return d.quiet.Load() }

// Late is how many events were skipped for starting after the schedule's
// end: an organization busy with long holds falls behind the plan.
func (d *Driver) Late() int { return int(d.late.Load()) }

// Run plays the events at their offsets from start, each in its own
// goroutine once its organizations are free, and returns when all have
// finished or one failed. An event that would start after end is skipped,
// so that the run stays within its duration.
func (d *Driver) Run(ctx context.Context, start, end time.Time, events []schedule.Event) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, ev := range events {
		// Pacing, not synchronisation: the schedule says when.
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(time.Until(start.Add(ev.At))):
		}
		wg.Go(func() {
			if err := d.play(ctx, ev, end); err != nil {
				cancel(fmt.Errorf("%s at %s: %w", ev.Kind, ev.At.Round(time.Second), err))
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// play takes the event's locks and carries it out, unless it is past end.
func (d *Driver) play(ctx context.Context, ev schedule.Event, end time.Time) error {
	idx := ev.Orgs
	if len(idx) == 0 {
		idx = d.all()
	}
	unlock := d.lock(idx)
	defer unlock()
	if ctx.Err() != nil {
		return nil
	}
	if time.Now().After(end) {
		d.late.Add(1)
		return nil
	}
	orgs := make([]Org, len(ev.Orgs))
	for i, n := range ev.Orgs {
		orgs[i] = d.orgs[n]
	}
	switch ev.Kind {
	case schedule.BadMAC:
		return d.each(orgs, func(o Org) error { return d.badMAC(ctx, o) })
	case schedule.WorkerKill:
		return d.each(orgs, func(o Org) error { return d.killWorker(ctx, o) })
	case schedule.Logout:
		return d.each(orgs, func(o Org) error { return d.logout(ctx, o) })
	case schedule.RestartTerm, schedule.RestartKill:
		return d.restart(ctx, ev.Kind)
	case schedule.Quiet:
		return d.pause(ctx, ev.For)
	}
	return fmt.Errorf("unknown event kind %q", ev.Kind)
}

// all is every organization's index: what restarts and pauses lock.
func (d *Driver) all() []int {
	idx := make([]int, len(d.orgs))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// lock takes the locks of the organizations idx in index order, so that
// events on overlapping sets never deadlock.
func (d *Driver) lock(idx []int) (unlock func()) {
	sorted := slices.Sorted(slices.Values(idx))
	for _, i := range sorted {
		d.locks[i].Lock()
	}
	return func() {
		for _, i := range sorted {
			d.locks[i].Unlock()
		}
	}
}

// each runs f for every organization at once and joins the errors.
func (d *Driver) each(orgs []Org, f func(Org) error) error {
	errs := make([]error, len(orgs))
	var wg sync.WaitGroup
	for i, o := range orgs {
		wg.Go(func() {
			if err := f(o); err != nil {
				errs[i] = fmt.Errorf("%s: %w", o.ID, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
