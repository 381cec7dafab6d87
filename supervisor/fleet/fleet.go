package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/contract"
	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/backoff"
	"github.com/wa-sidecar/wa-sidecar/supervisor/badmac"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/queue"
	"github.com/wa-sidecar/wa-sidecar/supervisor/registry"
)

// Worker is a running worker process as the fleet sees it.
type Worker interface {
	contract.Worker
	PID() int
	// Kill ends the process (gracefully first) and must be called on every
	// exit path; calling it twice is safe.
	Kill()
}

// LaunchFunc starts a worker process for org.
type LaunchFunc func(ctx context.Context, org string) (Worker, error)

// Metrics is what the fleet reports; *metrics.Metrics implements it.
type Metrics interface {
	SetStatus(org string, s state.Status)
	Forget(org string)
	SetLive(n int)
	SetQueueDepth(n int)
	BadMACError(org string)
	BadMACTrip(org string)
	SessionCleared(org, reason string)
	Logout(org, reason string)
	WorkerRestart(org, reason string)
	SetRSS(org string, bytes int64)
	QRCode(org string)
	ObserveStart(d time.Duration)
	DecryptFailure(org, reason string)
}

// Archiver moves an organization's auth directory aside and prunes old
// archives; the archive package provides the real one.
type Archiver interface {
	Move(org, reason string, now time.Time) (string, error)
	Prune(org string, keep int) ([]string, error)
}

// Options wires a Fleet.
type Options struct {
	Config   config.Config
	Registry *registry.Registry
	Launch   LaunchFunc
	Archive  Archiver
	Metrics  Metrics
	Clock    clock.Clock
	Log      *slog.Logger
	// Jitter picks the random delay before a start; nil = uniform.
	Jitter func(min, max time.Duration) time.Duration
}

// Fleet owns every organization. All methods are safe for concurrent use.
type Fleet struct {
	cfg     config.Config
	reg     *registry.Registry
	launch  LaunchFunc
	archive Archiver
	metrics Metrics
	clock   clock.Clock
	log     *slog.Logger
	policy  badmac.Policy

	mu      sync.Mutex
	orgs    map[string]*org
	queue   *queue.Queue
	closing bool
	// stopping counts background jobs (launches, worker closes, archiving)
	// so Shutdown can wait for them; busy mirrors it for tests, which may
	// not Wait on a WaitGroup that is being added to.
	stopping sync.WaitGroup
	busy     atomic.Int32
	// occupied counts, per organization ID, the background jobs that still
	// hold its worker process or auth directory (a launch, a close, an
	// archive). A start admitted meanwhile is deferred until they finish, so
	// two processes never share one auth directory and a new worker never
	// starts on a directory about to be archived.
	occupied map[string]int
	deferred map[string]bool
	// startWaiters counts Start calls waiting on a launch, for tests.
	startWaiters atomic.Int32
}

// org is the live, in-memory side of one organization; rec is its
// persisted side.
type org struct {
	rec    registry.Record
	status state.Status

	proc Worker
	// launching is closed when the launch in flight has an outcome.
	launching chan struct{}
	// gen increases at every launch and detach, so events and results of a
	// worker that was replaced or stopped meanwhile are recognised and dropped.
	gen int

	qr             *pb.QR
	pairingCode    string
	connectedSince time.Time
	crashes        int
	lastEvent      string
	lastError      string
	timer          clock.Timer
}

// New builds a Fleet from the registry and the config's [[org]] list. Call
// Boot to start what should run.
func New(o Options) *Fleet {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	c := o.Config
	f := &Fleet{
		cfg: c, reg: o.Registry, launch: o.Launch, archive: o.Archive,
		metrics: o.Metrics, clock: o.Clock, log: o.Log,
		policy: badmac.Policy{
			Limit:            c.BadMAC.Limit,
			ResetAfter:       c.BadMAC.ResetAfter.Duration,
			RestartDelay:     c.BadMAC.RestartDelay.Duration,
			StormTrips:       c.BadMAC.StormTrips,
			StormWindow:      time.Hour,
			StormMaxCooldown: c.BadMAC.StormMaxCooldown.Duration,
		},
		orgs:     map[string]*org{},
		occupied: map[string]int{},
		deferred: map[string]bool{},
		queue: queue.New(queue.Config{
			MaxLive:   c.Workers.MaxLive,
			Gap:       c.Workers.StartGap.Duration,
			JitterMin: c.Workers.StartJitter[0].Duration,
			JitterMax: c.Workers.StartJitter[1].Duration,
		}, o.Jitter),
	}
	return f
}

// Boot registers the config's organizations and starts every organization
// that should run, restoring cooldowns and bans from the registry.
func (f *Fleet) Boot() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	for _, c := range f.cfg.Orgs {
		if _, ok := f.reg.Get(c.ID); ok {
			continue
		}
		if err := f.reg.Put(registry.Record{ID: c.ID, Wanted: true, FromConfig: true, AddedAt: now}); err != nil {
			return fmt.Errorf("register %s: %w", c.ID, err)
		}
	}
	for _, rec := range f.reg.All() {
		if rec.ArchivePending != "" {
			if err := f.finishArchive(&rec, now); err != nil {
				return err
			}
			if rec.ArchivePending == "deleted" {
				continue
			}
		}
		o := &org{rec: rec}
		f.orgs[rec.ID] = o
		f.restore(o, now)
	}
	f.pump()
	return nil
}

// restore decides what a registered organization does after a supervisor
// start: sticky states stay, waits are re-armed, the rest queue.
func (f *Fleet) restore(o *org, now time.Time) {
	rec := o.rec
	switch {
	case rec.Status == state.Banned && rec.BanUntil != nil:
		// A ban that expired while the supervisor was down relinks at
		// once (after clamps the wait at 0) instead of staying banned.
		f.setStatus(o, state.Banned, "restored")
		f.after(o, rec.BanUntil.Sub(now), "ban_expired", f.relinkLocked)
	case rec.Status != "":
		f.setStatus(o, rec.Status, cmp.Or(rec.StatusReason, "restored"))
	case !rec.Wanted:
		f.setStatus(o, state.Stopped, "restored")
	case rec.CooldownUntil != nil && rec.CooldownUntil.After(now):
		f.setStatus(o, state.Cooldown, "restored")
		f.after(o, rec.CooldownUntil.Sub(now), "cooldown_over", f.relinkLocked)
	default:
		f.enqueue(o, "restored")
	}
}

// List returns every organization's status, sorted by ID.
func (f *Fleet) List() []state.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(f.orgs))
	for id := range f.orgs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]state.Snapshot, 0, len(ids))
	for _, id := range ids {
		out = append(out, f.snapshot(f.orgs[id]))
	}
	return out
}

// Get returns one organization's status.
func (f *Fleet) Get(id string) (state.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, err := f.find(id)
	if err != nil {
		return state.Snapshot{}, err
	}
	return f.snapshot(o), nil
}

// Start registers id if it is new and starts or links it. It never touches
// a connected, starting or queued organization, and refuses while a cooldown
// or ban holds.
func (f *Fleet) Start(id string) (state.Snapshot, error) {
	snap, launching, err := f.start(id)
	if err != nil || launching == nil {
		return snap, err
	}
	// A start that finds a launch in flight waits for it, so the caller
	// sees its outcome (a QR, restoring, or a failure) rather than a
	// half-started organization; it never launches a second worker.
	f.startWaiters.Add(1)
	defer f.startWaiters.Add(-1)
	select {
	case <-launching:
	case <-time.After(launchTimeout):
	}
	return f.Get(id)
}

// start registers and queues id; it returns the launch in flight, if any,
// for Start to wait on.
func (f *Fleet) start(id string) (state.Snapshot, <-chan struct{}, error) {
	if err := orgid.Validate(id); err != nil {
		return state.Snapshot{}, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return state.Snapshot{}, nil, &ConflictError{Org: id, Msg: "the supervisor is shutting down"}
	}
	now := f.clock.Now()
	o, err := f.register(id, now)
	if err != nil {
		return state.Snapshot{}, nil, err
	}
	if err := f.held(o, now); err != nil {
		return f.snapshot(o), nil, err
	}
	if o.launching != nil {
		return f.snapshot(o), o.launching, nil
	}
	if o.proc != nil || f.queue.IsLive(id) || o.status == state.Queued {
		return f.snapshot(o), nil, nil
	}
	if err := f.commit(o, func(r *registry.Record) {
		r.Status, r.StatusReason, r.Wanted = "", "", true
		r.BanUntil = nil
	}); err != nil {
		return state.Snapshot{}, nil, err
	}
	o.crashes = 0
	f.enqueue(o, "start")
	f.pump()
	return f.snapshot(o), nil, nil
}

// held refuses a start or relink while a cooldown or a ban is in force.
func (f *Fleet) held(o *org, now time.Time) error {
	if u := o.rec.CooldownUntil; u != nil && u.After(now) {
		return &CooldownError{Org: o.rec.ID, Until: *u, Reason: o.rec.CooldownReason}
	}
	if u := o.rec.BanUntil; u != nil && u.After(now) {
		return &CooldownError{Org: o.rec.ID, Until: *u, Reason: "temporary ban"}
	}
	return nil
}

// open finds an organization for an operator action, refusing while the
// supervisor shuts down (the API answers until its own turn to stop).
func (f *Fleet) open(id string) (*org, error) {
	o, err := f.find(id)
	if err != nil {
		return nil, err
	}
	if f.closing {
		return nil, &ConflictError{Org: id, Msg: "the supervisor is shutting down"}
	}
	return o, nil
}

// Stop closes the worker and keeps the auth directory; the organization
// stays stopped (across supervisor restarts too) until started again.
func (f *Fleet) Stop(id string) (state.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, err := f.open(id)
	if err != nil {
		return state.Snapshot{}, err
	}
	if err := f.stick(o, state.Stopped, "operator"); err != nil {
		return state.Snapshot{}, err
	}
	f.closeLater(id, f.halt(o, "stop"))
	f.pump()
	return f.snapshot(o), nil
}

// Logout unlinks the device on WhatsApp's side, archives the auth
// directory and starts the logout cooldown.
func (f *Fleet) Logout(ctx context.Context, id string) (state.Snapshot, error) {
	f.mu.Lock()
	o, err := f.open(id)
	if err != nil {
		f.mu.Unlock()
		return state.Snapshot{}, err
	}
	proc, gen := o.proc, o.gen
	if proc == nil || !o.rec.Linked {
		f.mu.Unlock()
		return state.Snapshot{}, &ConflictError{Org: id, Msg: "no linked session is running; start it first"}
	}
	f.mu.Unlock()

	if err := proc.Logout(ctx); err != nil {
		return state.Snapshot{}, workerRefused(id, "logout", err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if o.gen == gen {
		f.loggedOut(o, "manual")
	}
	return f.snapshot(o), nil
}

// Clear archives the auth directory and relinks: the manual cure for Bad MAC.
func (f *Fleet) Clear(id string) (state.Snapshot, error) {
	if err := orgid.Validate(id); err != nil {
		return state.Snapshot{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o, err := f.open(id)
	if err != nil {
		return state.Snapshot{}, err
	}
	now := f.clock.Now()
	if err := f.held(o, now); err != nil {
		return f.snapshot(o), err
	}
	// A manual clear relinks like a trip, so it feeds the storm guard: a
	// caller that clears in a loop gets ever longer waits.
	wait := f.policy.Trip(&o.rec.BadMAC, now)
	f.metrics.SessionCleared(id, "manual")
	f.log.Warn("session cleared by an operator: archiving and relinking", "org", id, "relink_in", wait.String())
	f.clearAndRelink(o, "manual", wait, now)
	return f.snapshot(o), nil
}

// Delete stops the organization, archives its auth directory and forgets it.
func (f *Fleet) Delete(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, err := f.open(id)
	if err != nil {
		return err
	}
	// The record stays, marked, until the directory is archived: a crash
	// in between finishes the archive at the next boot.
	if err := f.commit(o, func(r *registry.Record) {
		r.Wanted, r.Status, r.StatusReason = false, state.Stopped, "deleted"
		r.ArchivePending = "deleted"
	}); err != nil {
		return err
	}
	proc := f.halt(o, "delete")
	delete(f.orgs, id)
	f.metrics.Forget(id)
	f.job(id, func() {
		closeWorker(proc, f.cfg.Workers.StopTimeout.Duration)
		f.archiveDir(id, "deleted", f.clock.Now())
		f.mu.Lock()
		defer f.mu.Unlock()
		// A Start may have registered the ID again meanwhile: its record
		// replaced this one and must stay.
		if _, again := f.orgs[id]; !again {
			if err := f.reg.Delete(id); err != nil {
				f.log.Error("forget deleted organization failed", "org", id, "err", err)
			}
		}
	})
	f.log.Info("organization deleted; its auth directory is being archived", "org", id)
	f.pump()
	return nil
}

// PairPhone asks the worker for a code to type on the phone instead of
// scanning the QR.
func (f *Fleet) PairPhone(ctx context.Context, id, phone string) (string, error) {
	f.mu.Lock()
	o, err := f.open(id)
	if err != nil {
		f.mu.Unlock()
		return "", err
	}
	proc, gen := o.proc, o.gen
	if proc == nil || o.status != state.QRRequired {
		f.mu.Unlock()
		return "", &ConflictError{Org: id, Msg: fmt.Sprintf("pairing needs a running, unlinked session (status is %s)", o.status)}
	}
	f.mu.Unlock()
	code, err := proc.PairPhone(ctx, phone)
	if err != nil {
		return "", workerRefused(id, "pair by phone", err)
	}
	f.mu.Lock()
	if o.gen == gen {
		o.pairingCode = code
		o.lastEvent = "pairing_code"
	}
	f.mu.Unlock()
	return code, nil
}

// Shutdown closes every worker in parallel, each within stop_timeout, and
// refuses further starts. Persisted state keeps what should run, so the
// next supervisor start brings the same organizations back.
func (f *Fleet) Shutdown(ctx context.Context) {
	f.mu.Lock()
	f.closing = true
	for _, o := range f.orgs {
		if o.timer != nil {
			o.timer.Stop()
			o.timer = nil
		}
		f.closeLater(o.rec.ID, f.detach(o))
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.stopping.Wait(); close(done) }()
	select {
	case <-done:
		f.log.Info("all workers closed")
	case <-ctx.Done():
		f.log.Warn("shutdown deadline passed with workers still closing")
	}
}

// CheckHealth pings every live worker once: an unresponsive one is killed
// and restarted like a crash.
func (f *Fleet) CheckHealth(ctx context.Context) {
	type target struct {
		o    *org
		proc Worker
		gen  int
	}
	f.mu.Lock()
	var targets []target
	for _, o := range f.orgs {
		if o.proc != nil {
			targets = append(targets, target{o, o.proc, o.gen})
		}
	}
	f.mu.Unlock()
	timeout := f.cfg.Workers.HealthInterval.Duration / 2
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			resp, err := t.proc.Ping(pctx)
			if ctx.Err() != nil {
				return
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if t.o.gen != t.gen {
				return
			}
			if err != nil {
				t.o.lastError = fmt.Sprintf("health check: %v", err)
				f.log.Warn("worker unresponsive, restarting", "org", t.o.rec.ID, "err", err)
				f.crashed(t.o, "unhealthy")
				return
			}
			f.metrics.SetRSS(t.o.rec.ID, resp.RssBytes)
		}()
	}
	wg.Wait()
}

// RunHealth calls CheckHealth every health_interval until ctx ends.
func (f *Fleet) RunHealth(ctx context.Context) {
	interval := f.cfg.Workers.HealthInterval.Duration
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.CheckHealth(ctx)
		}
	}
}

// --- internals; every method below runs with f.mu held ---

func (f *Fleet) find(id string) (*org, error) {
	if err := orgid.Validate(id); err != nil {
		return nil, err
	}
	o, ok := f.orgs[id]
	if !ok {
		return nil, fmt.Errorf("organization %s: %w", id, ErrUnknownOrg)
	}
	return o, nil
}

func (f *Fleet) register(id string, now time.Time) (*org, error) {
	if o, ok := f.orgs[id]; ok {
		return o, nil
	}
	o := &org{rec: registry.Record{ID: id, Wanted: true, AddedAt: now}}
	if err := f.save(o); err != nil {
		return nil, err
	}
	f.orgs[id] = o
	f.setStatus(o, state.Stopped, "registered")
	f.log.Info("organization registered", "org", id)
	return o, nil
}

func (f *Fleet) save(o *org) error {
	if err := f.reg.Put(o.rec); err != nil {
		f.log.Error("persist organization failed", "org", o.rec.ID, "err", err)
		return fmt.Errorf("persist %s: %w", o.rec.ID, err)
	}
	return nil
}

// setStatus is the one place a status changes: metrics follow here, and so
// will webhooks.
func (f *Fleet) setStatus(o *org, s state.Status, event string) {
	o.lastEvent = event
	if o.status == s {
		return
	}
	f.log.Info("status changed", "org", o.rec.ID, "from", string(o.status), "to", string(s), "event", event)
	o.status = s
	if s != state.QRRequired {
		o.qr = nil
		o.pairingCode = ""
	}
	if s != state.Connected && s != state.Disconnected {
		o.connectedSince = time.Time{}
	}
	f.metrics.SetStatus(o.rec.ID, s)
}

func (f *Fleet) enqueue(o *org, event string) {
	f.cancelTimer(o)
	f.queue.Push(o.rec.ID)
	f.setStatus(o, state.Queued, event)
}

// pump admits queued organizations while slots are free. Each admitted
// start runs after its jitter and gap; the queue allows one in flight.
func (f *Fleet) pump() {
	defer f.gauges()
	if f.closing {
		return
	}
	for {
		id, at, ok := f.queue.Next(f.clock.Now())
		if !ok {
			return
		}
		o, known := f.orgs[id]
		if !known {
			f.queue.Remove(id)
			continue
		}
		f.cancelTimer(o)
		gen := o.gen
		o.timer = f.clock.AfterFunc(at.Sub(f.clock.Now()), func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if o.gen != gen || f.closing || f.orgs[id] != o {
				return
			}
			o.timer = nil
			if f.occupied[id] > 0 {
				f.log.Info("start waits for the previous worker to close", "org", id)
				f.deferred[id] = true
				return
			}
			f.spawn(o)
		})
	}
}

func (f *Fleet) gauges() {
	f.metrics.SetLive(f.queue.Live())
	f.metrics.SetQueueDepth(f.queue.Depth())
}

// spawn launches the worker in the background; the queue holds the slot
// and blocks other starts until it reports back.
func (f *Fleet) spawn(o *org) {
	o.gen++
	gen, id := o.gen, o.rec.ID
	if o.rec.Linked {
		f.setStatus(o, state.Restoring, "spawn")
	} else {
		f.setStatus(o, state.Starting, "spawn")
	}
	began := f.clock.Now()
	req := &pb.StartRequest{
		OrganizationId:  id,
		AuthDir:         absPath(f.cfg.AuthDir(id)),
		QrGiveUpAfterMs: f.cfg.QR.GiveUpAfter.Milliseconds(),
		LogLevel:        f.cfg.LogLevel,
	}
	if e := f.cfg.WhatsApp.Emulator; e != nil {
		req.EmulatorUrl = e.URL
	}
	f.log.Info("starting worker", "org", id, "restoring", o.rec.Linked)
	launching := make(chan struct{})
	o.launching = launching
	f.job(id, func() {
		ctx, cancel := context.WithTimeout(context.Background(), launchTimeout)
		defer cancel()
		proc, err := f.launch(ctx, id)
		var resp *pb.StartResponse
		if err == nil {
			resp, err = proc.Start(ctx, req)
			if err != nil {
				proc.Kill()
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		defer f.pump()
		defer func() {
			close(launching)
			if o.launching == launching {
				o.launching = nil
			}
		}()
		if o.gen != gen || f.closing || f.orgs[id] != o {
			// Whatever made this launch stale (stop, delete, shutdown) took
			// it out of the queue already; Started would match a newer
			// admission of the same organization.
			f.closeLater(id, proc)
			return
		}
		f.queue.Started(id)
		if err != nil {
			o.lastError = err.Error()
			f.log.Error("worker start failed", "org", id, "err", err)
			f.crashed(o, "start_failed")
			return
		}
		f.metrics.ObserveStart(f.clock.Now().Sub(began))
		o.proc = proc
		if resp.Restoring != o.rec.Linked {
			o.rec.Linked = resp.Restoring
			_ = f.save(o)
		}
		// The worker knows best whether its store holds a device (a store
		// deleted by whatsmeow on a 401 reads as unlinked).
		if resp.Restoring {
			f.setStatus(o, state.Restoring, "started")
		} else {
			f.setStatus(o, state.Starting, "started")
		}
		f.log.Info("worker started", "org", id, "pid", proc.PID())
		go f.follow(o, gen, proc)
	})
}

// follow streams a worker's events until the stream ends; an end that the
// fleet did not ask for is a crash.
func (f *Fleet) follow(o *org, gen int, proc Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := proc.Events(ctx, func(ev *pb.Event) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if o.gen != gen {
			return errStale
		}
		f.handle(o, ev)
		return nil
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if o.gen != gen {
		return
	}
	if err != nil {
		o.lastError = err.Error()
	}
	f.log.Warn("worker exited unexpectedly", "org", o.rec.ID, "err", err)
	f.crashed(o, "crash")
}

var errStale = errors.New("worker was replaced")

// handle applies one worker event.
func (f *Fleet) handle(o *org, ev *pb.Event) {
	id := o.rec.ID
	now := f.clock.Now()
	switch k := ev.Kind.(type) {
	case *pb.Event_Qr:
		o.qr = k.Qr
		f.metrics.QRCode(id)
		f.setStatus(o, state.QRRequired, "qr")
	case *pb.Event_PairSuccess:
		o.rec.Linked = true
		o.rec.JID = k.PairSuccess.Jid
		_ = f.save(o)
		f.log.Info("paired", "org", id, "jid", k.PairSuccess.Jid)
		// Linked now, logging in with the new auth: what restoring means.
		f.setStatus(o, state.Restoring, "pair_success")
	case *pb.Event_Connected:
		if !o.rec.Linked || o.rec.JID != k.Connected.Jid {
			o.rec.Linked = true
			o.rec.JID = k.Connected.Jid
			_ = f.save(o)
		}
		f.setStatus(o, state.Connected, "connected")
		o.connectedSince = now
	case *pb.Event_Disconnected:
		if o.status == state.Connected {
			f.setStatus(o, state.Disconnected, "disconnected")
		}
	case *pb.Event_LoggedOut:
		reason := k.LoggedOut.Reason
		if reason == "" {
			reason = "logged_out"
		}
		f.loggedOut(o, reason)
	case *pb.Event_StreamReplaced:
		f.closeLater(id, f.halt(o, "replaced"))
		_ = f.stick(o, state.Replaced, "stream_replaced")
		f.pump()
	case *pb.Event_TemporaryBan:
		f.closeLater(id, f.halt(o, "banned"))
		o.rec.BanUntil = nil
		// Without an expiry (WhatsApp may omit it) a timer would relink
		// at once, the hammering a ban asks us to avoid: stay banned until
		// an operator starts the organization.
		if ms := k.TemporaryBan.ExpiresAtUnixMs; ms > 0 {
			until := time.UnixMilli(ms)
			o.rec.BanUntil = &until
			f.after(o, until.Sub(now), "ban_expired", f.relinkLocked)
		}
		_ = f.stick(o, state.Banned, "temporary_ban")
		f.pump()
	case *pb.Event_ConnectFailure:
		o.lastError = fmt.Sprintf("connect failure %s: %s", k.ConnectFailure.Reason, k.ConnectFailure.Message)
		o.lastEvent = "connect_failure"
	case *pb.Event_BadMac:
		f.badMAC(o, now)
	case *pb.Event_DecryptFailure:
		f.metrics.DecryptFailure(id, k.DecryptFailure.Reason)
		o.lastEvent = "decrypt_failure"
	case *pb.Event_QrGaveUp:
		f.closeLater(id, f.halt(o, "qr_timeout"))
		f.log.Info("no QR scanned in time; worker stopped to free the slot", "org", id)
		_ = f.stick(o, state.Stopped, "qr_timeout")
		f.pump()
	case *pb.Event_MessageReceived:
		o.lastEvent = "message"
	}
}

func (f *Fleet) badMAC(o *org, now time.Time) {
	id := o.rec.ID
	f.metrics.BadMACError(id)
	tripped, wait := f.policy.Observe(&o.rec.BadMAC, now)
	o.lastEvent = "bad_mac"
	if !tripped {
		_ = f.save(o)
		f.log.Warn("bad MAC", "org", id, "count", o.rec.BadMAC.Count, "limit", f.cfg.BadMAC.Limit)
		return
	}
	f.log.Warn("bad MAC limit reached: archiving the session and relinking", "org", id, "trips", o.rec.BadMAC.TotalTrips, "relink_in", wait.String())
	f.metrics.BadMACTrip(id)
	f.metrics.SessionCleared(id, "bad_mac_errors")
	f.clearAndRelink(o, "bad_mac", wait, now)
}

// clearAndRelink stops the worker, archives the auth directory and queues a
// clean worker after wait, or after a cooldown that is already longer.
func (f *Fleet) clearAndRelink(o *org, reason string, wait time.Duration, now time.Time) {
	proc := f.halt(o, reason)
	o.rec.Linked = false
	o.rec.JID = ""
	o.rec.Status, o.rec.StatusReason = "", ""
	o.rec.Wanted = true
	o.rec.ArchivePending = "corrupted"
	until := now.Add(wait)
	if o.rec.CooldownUntil == nil || o.rec.CooldownUntil.Before(until) {
		o.rec.CooldownUntil = &until
		o.rec.CooldownReason = reason
	}
	_ = f.save(o)
	f.setStatus(o, state.Cooldown, "session_cleared")
	// The relink timer is armed now; should it fire before the archive is
	// done, the start is deferred until the job below finishes.
	f.after(o, until.Sub(now), "relink", f.relinkLocked)
	f.archiveLater(o, proc, "corrupted")
	f.pump()
}

// loggedOut applies WhatsApp's LOGOUT (or an operator's): no restart, a
// cooldown before any relink, and the dead store archived.
func (f *Fleet) loggedOut(o *org, reason string) {
	id := o.rec.ID
	now := f.clock.Now()
	proc := f.halt(o, "logged_out")
	until := now.Add(f.cfg.Logout.Cooldown.Duration)
	o.rec.Linked = false
	o.rec.JID = ""
	o.rec.CooldownUntil = &until
	o.rec.CooldownReason = "logout"
	o.rec.ArchivePending = "loggedout"
	f.metrics.Logout(id, reason)
	f.log.Warn("logged out; no automatic restart", "org", id, "reason", reason, "cooldown_until", until)
	_ = f.stick(o, state.LoggedOut, reason)
	f.archiveLater(o, proc, "loggedout")
	f.pump()
}

// crashed handles a worker that died or stopped answering: restart on the
// same auth after a backoff, or give up after crash_limit.
func (f *Fleet) crashed(o *org, reason string) {
	id := o.rec.ID
	// Only a connection that held for a while wipes the slate: a worker
	// that dies soon after each connect would otherwise reconnect every
	// second forever, the fast cycle WhatsApp answers with LOGOUT.
	if !o.connectedSince.IsZero() && f.clock.Now().Sub(o.connectedSince) >= stableConnection {
		o.crashes = 0
	}
	f.closeLater(id, f.halt(o, reason))
	o.crashes++
	f.metrics.WorkerRestart(id, reason)
	if o.crashes >= f.cfg.Workers.CrashLimit {
		f.log.Error("worker keeps failing; giving up until an operator starts it", "org", id, "crashes", o.crashes)
		_ = f.stick(o, state.Failed, reason)
		f.pump()
		return
	}
	delay := crashDelay(f.cfg.Workers.CrashBackoff, o.crashes)
	f.log.Warn("restarting worker after backoff", "org", id, "reason", reason, "attempt", o.crashes, "in", delay.String())
	f.setStatus(o, state.Queued, reason)
	f.after(o, delay, "restart", f.relinkLocked)
	f.pump()
}

// relinkLocked queues the organization again once a wait is over.
func (f *Fleet) relinkLocked(o *org) {
	if o.rec.Status == state.Banned {
		o.rec.Status, o.rec.StatusReason = "", ""
		o.rec.BanUntil = nil
		o.rec.Wanted = true
		_ = f.save(o)
	}
	f.enqueue(o, "relink")
	f.pump()
}

// after runs fn with the lock held after d, unless the organization moved
// on meanwhile (another timer, a launch, a stop).
func (f *Fleet) after(o *org, d time.Duration, what string, fn func(*org)) {
	f.cancelTimer(o)
	gen := o.gen
	id := o.rec.ID
	o.timer = f.clock.AfterFunc(max(d, 0), func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if o.gen != gen || f.closing || f.orgs[id] != o {
			return
		}
		o.timer = nil
		f.log.Debug("timer fired", "org", id, "what", what)
		fn(o)
	})
}

func (f *Fleet) cancelTimer(o *org) {
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
}

// halt takes the organization out of the queue and detaches its worker,
// returning it for the caller to close.
func (f *Fleet) halt(o *org, why string) Worker {
	f.cancelTimer(o)
	f.queue.Remove(o.rec.ID)
	proc := f.detach(o)
	if proc != nil {
		f.log.Info("closing worker", "org", o.rec.ID, "why", why)
	}
	return proc
}

// detach bumps the generation so the old worker's events are ignored.
func (f *Fleet) detach(o *org) Worker {
	o.gen++
	// A launch in flight is stale from here on: later starts queue anew
	// (and wait for it to close) instead of waiting on its outcome.
	o.launching = nil
	proc := o.proc
	o.proc = nil
	if proc != nil {
		// A stale value would keep memory alerts firing for a worker
		// that is gone.
		f.metrics.SetRSS(o.rec.ID, 0)
	}
	return proc
}

// closeLater closes a worker that halt detached, off the lock; the
// organization counts as occupied until it is gone.
func (f *Fleet) closeLater(id string, proc Worker) {
	if proc != nil {
		f.job(id, func() { closeWorker(proc, f.cfg.Workers.StopTimeout.Duration) })
	}
}

// archiveLater closes the worker, archives the auth directory, then clears
// the pending mark that a crash in between would leave for Boot.
func (f *Fleet) archiveLater(o *org, proc Worker, reason string) {
	id := o.rec.ID
	f.job(id, func() {
		closeWorker(proc, f.cfg.Workers.StopTimeout.Duration)
		f.archiveDir(id, reason, f.clock.Now())
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.orgs[id] == o && o.rec.ArchivePending == reason {
			o.rec.ArchivePending = ""
			_ = f.save(o)
		}
	})
}

// job runs fn in the background with the organization marked occupied; a
// start deferred meanwhile runs when the last job ends.
func (f *Fleet) job(id string, fn func()) {
	f.occupied[id]++
	f.background(func() {
		fn()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.occupied[id]--
		if f.occupied[id] > 0 {
			return
		}
		delete(f.occupied, id)
		if !f.deferred[id] {
			return
		}
		delete(f.deferred, id)
		if o := f.orgs[id]; o != nil && o.proc == nil && f.queue.IsLive(id) && !f.closing {
			f.spawn(o)
		}
	})
}

// commit applies change to a copy of the record and persists it before the
// organization takes it, so an acknowledged action is never lost.
func (f *Fleet) commit(o *org, change func(*registry.Record)) error {
	rec := o.rec
	change(&rec)
	if err := f.reg.Put(rec); err != nil {
		f.log.Error("persist organization failed", "org", rec.ID, "err", err)
		return fmt.Errorf("persist %s: %w", rec.ID, err)
	}
	o.rec = rec
	return nil
}

// stick enters a status that holds across supervisor restarts, with why.
func (f *Fleet) stick(o *org, s state.Status, reason string) error {
	err := f.commit(o, func(r *registry.Record) {
		r.Status, r.StatusReason = s, reason
		r.Wanted = false
	})
	f.setStatus(o, s, reason)
	return err
}

// finishArchive completes an archive that a crash interrupted.
func (f *Fleet) finishArchive(rec *registry.Record, now time.Time) error {
	f.log.Warn("finishing an archive interrupted by a restart", "org", rec.ID, "reason", rec.ArchivePending)
	f.archiveDir(rec.ID, rec.ArchivePending, now)
	if rec.ArchivePending == "deleted" {
		if err := f.reg.Delete(rec.ID); err != nil {
			return fmt.Errorf("forget deleted %s: %w", rec.ID, err)
		}
		return nil
	}
	rec.ArchivePending = ""
	if err := f.reg.Put(*rec); err != nil {
		return fmt.Errorf("persist %s: %w", rec.ID, err)
	}
	return nil
}

func (f *Fleet) background(fn func()) {
	f.stopping.Add(1)
	f.busy.Add(1)
	go func() {
		defer f.stopping.Done()
		defer f.busy.Add(-1)
		fn()
	}()
}

func (f *Fleet) archiveDir(id, reason string, now time.Time) {
	path, err := f.archive.Move(id, reason, now)
	if err != nil {
		f.log.Error("archive auth directory failed", "org", id, "err", err)
		return
	}
	if path != "" {
		f.log.Info("auth directory archived", "org", id, "archive", filepath.Base(path))
	}
	removed, err := f.archive.Prune(id, f.cfg.BadMAC.KeepArchives)
	if err != nil {
		f.log.Error("prune archives failed", "org", id, "err", err)
	}
	for _, r := range removed {
		f.log.Info("old archive removed", "org", id, "archive", filepath.Base(r))
	}
}

// closeWorker asks a worker to disconnect cleanly, then ends the process.
func closeWorker(proc Worker, timeout time.Duration) {
	if proc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = proc.Stop(ctx)
	proc.Kill()
}

func (f *Fleet) snapshot(o *org) state.Snapshot {
	now := f.clock.Now()
	s := state.Snapshot{
		OrganizationID: o.rec.ID,
		Status:         o.status,
		JID:            o.rec.JID,
		RetryCount:     o.crashes,
		LastEvent:      o.lastEvent,
		LastError:      o.lastError,
		PairingCode:    o.pairingCode,
		BadMAC: state.BadMAC{
			Count: f.policy.Current(o.rec.BadMAC, now),
			Trips: o.rec.BadMAC.TotalTrips,
		},
	}
	if !o.rec.BadMAC.LastErrorAt.IsZero() {
		t := o.rec.BadMAC.LastErrorAt.UTC()
		s.BadMAC.LastErrorAt = &t
	}
	if o.qr != nil {
		s.QR = o.qr.PngDataUrl
		s.QRCode = o.qr.Code
		t := time.UnixMilli(o.qr.ExpiresAtUnixMs).UTC()
		s.QRExpiresAt = &t
	}
	if !o.connectedSince.IsZero() {
		t := o.connectedSince.UTC()
		s.ConnectedSince = &t
	}
	// A ban holds a relink back like a cooldown (Start answers 409 until
	// it ends), so cooldown_until shows its expiry while banned.
	if u := o.rec.CooldownUntil; u != nil && u.After(now) {
		t := u.UTC()
		s.CooldownUntil = &t
	} else if u := o.rec.BanUntil; u != nil && u.After(now) && o.status == state.Banned {
		t := u.UTC()
		s.CooldownUntil = &t
	}
	if o.proc != nil {
		s.WorkerPID = o.proc.PID()
	}
	return s
}

// launchTimeout bounds spawning a worker and its Start call.
const launchTimeout = time.Minute

// stableConnection is how long a worker must stay connected before its
// crash count starts over.
const stableConnection = 10 * time.Minute

// workerRefused turns a worker's refusal (not linked yet, already linked,
// not connected) into a conflict that carries the worker's own sentence,
// rather than an internal error that hides it.
func workerRefused(id, action string, err error) error {
	return &ConflictError{Org: id, Msg: fmt.Sprintf("%s: %s", action, status.Convert(err).Message())}
}

func crashDelay(r [2]config.Duration, attempt int) time.Duration {
	return backoff.Delay(r[0].Duration, r[1].Duration, attempt)
}

// absPath gives the worker an absolute auth directory, so it does not
// depend on the working directory it inherits.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
