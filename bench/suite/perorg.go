package suite

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/wa-sidecar/wa-sidecar/bench/measure"
	"github.com/wa-sidecar/wa-sidecar/bench/report"
	"github.com/wa-sidecar/wa-sidecar/bench/rig"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// pollEvery is the resolution of a timed transition: the status is polled
// this often until it shows the transition's end. Waits that are not timed
// poll at pollCalm, so that ten organizations linking at once are not also
// slowed by 2,000 status requests a second.
const (
	pollEvery = 5 * time.Millisecond
	pollCalm  = 50 * time.Millisecond
)

// waitLong bounds any one wait for a status; a run on a loaded 2-core
// machine links ten sessions in well under it.
const waitLong = 60 * time.Second

// outboxOrg is registered and stopped: what is queued for it stays queued.
const outboxOrg = "outbox"

func orgID(i int) string { return "o" + strconv.Itoa(i) }

func orgPhone(i int) string { return fmt.Sprintf("573001%06d", i) }

// processPerOrg runs the supervisor model: memory at each K, then the
// timed reactions and the API. It returns, per K, the model's total PSS in
// MiB for the ratio.
func (r *run) processPerOrg(ctx context.Context, dir string) (model map[int]float64, err error) {
	r.say("process per organization: starting the supervisor")
	sup, err := rig.StartSupervisor(ctx, r.cfg.Bin, dir, r.emu, supervisorConfig(r.cfg.MemoryLimit))
	if err != nil {
		return nil, err
	}
	defer func() {
		stopErr := sup.Stop()
		if stopErr == nil {
			stopErr = rig.WaitExited(r.workers, 15*time.Second)
		}
		err = errors.Join(err, stopErr)
	}()
	r.api = sup.API

	model = map[int]float64{}
	linked := 0
	for _, k := range Ks {
		r.say("process per organization: linking up to %d", k)
		if linked == 0 {
			// The first start is timed alone: nothing else is starting.
			d, err := r.link(ctx, 1, pollEvery)
			if err != nil {
				return nil, err
			}
			r.tab.Add(rowStartQR, colValue, ms(d))
			linked = 1
		}
		if err := r.linkAll(ctx, linked+1, k); err != nil {
			return nil, err
		}
		linked = k
		if err := sleep(ctx, r.cfg.Settle); err != nil {
			return nil, err
		}
		if model[k], err = r.readMemory(ctx, k, sup.PID()); err != nil {
			return nil, err
		}
	}

	if r.cfg.MemoryOnly {
		return model, nil
	}
	r.say("process per organization: %d status polls, idle", polls)
	if err := r.pollStatus(ctx, orgID(1), rowIdleP50, rowIdleP99); err != nil {
		return nil, err
	}
	r.say("process per organization: Bad MAC trip")
	d, err := r.badMACTrip(ctx, orgID(1), orgPhone(1))
	if err != nil {
		return nil, err
	}
	r.tab.Add(rowBadMAC, colValue, ms(d))
	r.say("process per organization: worker kill -9")
	if d, err = r.killWorker(ctx, orgID(2)); err != nil {
		return nil, err
	}
	r.tab.Add(rowKill, colValue, ms(d))
	r.say("process per organization: contacts/check of %d numbers", checkNumbers)
	if err := r.contactsCheck(ctx, orgID(3)); err != nil {
		return nil, err
	}
	r.say("process per organization: a 1 MiB PDF sent")
	if err := r.mediaSend(ctx, orgID(4), orgPhone(5)); err != nil {
		return nil, err
	}
	if err := r.outbox(ctx); err != nil {
		return nil, err
	}
	return model, nil
}

// link starts organization i, has its phone scan the QR and waits until it
// is connected; it returns the time from the start's POST to the status
// showing the QR, polled every every.
func (r *run) link(ctx context.Context, i int, every time.Duration) (time.Duration, error) {
	org := orgID(i)
	started := time.Now()
	if _, err := r.api.Start(ctx, org); err != nil {
		return 0, fmt.Errorf("start %s: %w", org, err)
	}
	qr, seen, err := r.await(ctx, org, every, "showing a QR", func(s state.Snapshot) bool {
		return s.Status == state.QRRequired && s.QRCode != ""
	})
	if err != nil {
		return 0, err
	}
	if err := r.ctl.Scan(ctx, qr.QRCode, orgPhone(i)); err != nil {
		return 0, fmt.Errorf("scan %s's QR: %w", org, err)
	}
	if _, _, err := r.await(ctx, org, pollCalm, "connected", func(s state.Snapshot) bool { return s.Status == state.Connected }); err != nil {
		return 0, err
	}
	return seen.Sub(started), nil
}

// linkAll links organizations from to to at once, as the supervisor lets
// them start.
func (r *run) linkAll(ctx context.Context, from, to int) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := from; i <= to; i++ {
		wg.Go(func() {
			if _, err := r.link(ctx, i, pollCalm); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readMemory adds the memory rows of K = k: the mean worker of
// organizations 1 to k, and the supervisor. It returns the model's total
// PSS in MiB.
func (r *run) readMemory(ctx context.Context, k, supervisor int) (float64, error) {
	var sum measure.Memory
	for i := 1; i <= k; i++ {
		s, err := r.api.Status(ctx, orgID(i))
		if err != nil {
			return 0, fmt.Errorf("status of %s: %w", orgID(i), err)
		}
		if s.Status != state.Connected || s.WorkerPID == 0 {
			return 0, fmt.Errorf("%s is %s (worker %d) when its memory is read", orgID(i), s.Status, s.WorkerPID)
		}
		r.workers = append(r.workers, s.WorkerPID)
		m, err := measure.ReadMemory(s.WorkerPID)
		if err != nil {
			return 0, fmt.Errorf("worker of %s: %w", orgID(i), err)
		}
		sum = sum.Add(m)
	}
	sup, err := measure.ReadMemory(supervisor)
	if err != nil {
		return 0, fmt.Errorf("supervisor: %w", err)
	}
	col, each := kCol(k), float64(k)
	r.tab.Add(rowWorkerRSS, col, mib(sum.RSS)/each)
	r.tab.Add(rowWorkerPSS, col, mib(sum.PSS)/each)
	r.tab.Add(rowWorkerAnon, col, mib(sum.PSSAnon)/each)
	r.tab.Add(rowWorkerFile, col, mib(sum.PSSFile)/each)
	r.tab.Add(rowSupRSS, col, mib(sup.RSS))
	r.tab.Add(rowSupPSS, col, mib(sup.PSS))
	r.tab.Add(rowSupAnon, col, mib(sup.PSSAnon))
	r.tab.Add(rowSupFile, col, mib(sup.PSSFile))
	model := mib(sum.PSS + sup.PSS)
	r.tab.Add(rowModel, col, model)
	return model, nil
}

// badMACTrip sends the limit of Bad MACs to a connected organization and
// returns the time from the status showing the trip to it showing the new
// QR, less the restart_delay the supervisor waits on purpose in between.
func (r *run) badMACTrip(ctx context.Context, org, phone string) (time.Duration, error) {
	before, err := r.api.Status(ctx, org)
	if err != nil {
		return 0, fmt.Errorf("status of %s: %w", org, err)
	}
	if err := r.ctl.BadMAC(ctx, phone, badMACLimit); err != nil {
		return 0, fmt.Errorf("Bad MACs to %s: %w", org, err)
	}
	_, tripped, err := r.await(ctx, org, pollEvery, "tripped", func(s state.Snapshot) bool { return s.BadMAC.Trips > before.BadMAC.Trips })
	if err != nil {
		return 0, err
	}
	_, shown, err := r.await(ctx, org, pollEvery, "showing a new QR", func(s state.Snapshot) bool {
		return s.Status == state.QRRequired && s.QRCode != ""
	})
	if err != nil {
		return 0, err
	}
	return shown.Sub(tripped) - restartDelay, nil
}

// killWorker SIGKILLs a connected organization's worker and returns the
// time until a new worker is connected, less the crash backoff's minimum
// the supervisor waits on purpose.
func (r *run) killWorker(ctx context.Context, org string) (time.Duration, error) {
	s, err := r.api.Status(ctx, org)
	if err != nil {
		return 0, fmt.Errorf("status of %s: %w", org, err)
	}
	if s.Status != state.Connected || s.WorkerPID == 0 {
		return 0, fmt.Errorf("%s is %s (worker %d) before the kill", org, s.Status, s.WorkerPID)
	}
	killed := time.Now()
	if err := syscall.Kill(s.WorkerPID, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill worker %d of %s: %w", s.WorkerPID, org, err)
	}
	again, seen, err := r.await(ctx, org, pollEvery, "connected again", func(n state.Snapshot) bool {
		return n.Status == state.Connected && n.WorkerPID != 0 && n.WorkerPID != s.WorkerPID
	})
	if err != nil {
		return 0, err
	}
	r.workers = append(r.workers, again.WorkerPID)
	return seen.Sub(killed) - crashBackoffMin, nil
}

// outbox times enqueues into an organization that is not connected, fills
// its queue to `queued` with a broadcast, and times the status API then.
func (r *run) outbox(ctx context.Context) error {
	// Registered by a start, stopped at once: nothing it holds is sent.
	if _, err := r.api.Start(ctx, outboxOrg); err != nil {
		return fmt.Errorf("register %s: %w", outboxOrg, err)
	}
	if _, err := r.api.Stop(ctx, outboxOrg); err != nil {
		return fmt.Errorf("stop %s: %w", outboxOrg, err)
	}
	if _, _, err := r.await(ctx, outboxOrg, pollCalm, "stopped without a worker", func(s state.Snapshot) bool {
		return s.Status == state.Stopped && s.WorkerPID == 0
	}); err != nil {
		return err
	}

	r.say("process per organization: %d enqueues", enqueues)
	lat := make([]time.Duration, 0, enqueues)
	for i := range enqueues {
		start := time.Now()
		if _, err := r.api.Send(ctx, outboxOrg, fmt.Sprintf("5732%08d", i), "Your order has shipped", ""); err != nil {
			return fmt.Errorf("enqueue message %d: %w", i, err)
		}
		lat = append(lat, time.Since(start))
	}
	r.tab.Add(rowEnqP50, colValue, ms(measure.Percentile(lat, 50)))
	r.tab.Add(rowEnqP99, colValue, ms(measure.Percentile(lat, 99)))

	r.say("process per organization: a broadcast to fill the queue to %d", queued)
	recipients := make([]string, queued-enqueues)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("5733%08d", i)
	}
	if _, err := r.api.CreateBroadcast(ctx, outboxOrg, recipients, "December offers", ""); err != nil {
		return fmt.Errorf("broadcast to %d: %w", len(recipients), err)
	}
	if _, _, err := r.await(ctx, outboxOrg, pollCalm, fmt.Sprintf("holding %d queued", queued), func(s state.Snapshot) bool {
		return s.Outbox.Queued == queued
	}); err != nil {
		return err
	}
	r.say("process per organization: %d status polls, %d queued", polls, queued)
	if err := r.pollStatus(ctx, outboxOrg, rowFullP50, rowFullP99); err != nil {
		return err
	}
	r.say("process per organization: a broadcast of %d with media", enqueues)
	return r.mediaBroadcast(ctx)
}

// pollStatus times `polls` GET /v1/orgs/{org} one after the other, as a
// page refreshing a status does, and adds their p50 and p99.
func (r *run) pollStatus(ctx context.Context, org string, p50, p99 report.Row) error {
	lat := make([]time.Duration, 0, polls)
	for range polls {
		start := time.Now()
		if _, err := r.api.Status(ctx, org); err != nil {
			return fmt.Errorf("poll status of %s: %w", org, err)
		}
		lat = append(lat, time.Since(start))
	}
	r.tab.Add(p50, colValue, ms(measure.Percentile(lat, 50)))
	r.tab.Add(p99, colValue, ms(measure.Percentile(lat, 99)))
	return nil
}

// await polls org's status every every until want holds, and returns that
// status and when its answer came; it fails after waitLong.
func (r *run) await(ctx context.Context, org string, every time.Duration, what string, want func(state.Snapshot) bool) (state.Snapshot, time.Time, error) {
	deadline := time.Now().Add(waitLong)
	for {
		s, err := r.api.Status(ctx, org)
		seen := time.Now()
		if err != nil {
			return s, seen, fmt.Errorf("wait for %s %s: %w", org, what, err)
		}
		if want(s) {
			return s, seen, nil
		}
		if seen.After(deadline) {
			return s, seen, fmt.Errorf("%s not %s after %s: status %s, last event %q, last error %q",
				org, what, waitLong, s.Status, s.LastEvent, s.LastError)
		}
		if err := sleep(ctx, every); err != nil {
			return s, seen, fmt.Errorf("wait for %s %s: %w", org, what, err)
		}
	}
}
