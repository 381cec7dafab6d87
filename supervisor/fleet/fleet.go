// Package fleet runs the organizations. It is a thin facade over one runner
// per organization: the runner feeds each input (an API call, a worker
// event, an effect's outcome) to the pure lifecycle.Step, commits the new
// record to the state store, only then shows it, and carries out the
// effects in order (close → archive → launch). Slots come from one
// host-wide start queue; processes from a LaunchFunc.
//
// Reads never wait: Get and List answer from the last committed state that
// each runner published.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/contract"
	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/queue"
)

// Fleet owns every organization. All methods are safe for concurrent use.
type Fleet struct {
	cfg      config.Config
	policy   lifecycle.Policy
	store    Store
	launch   LaunchFunc
	archive  Archiver
	metrics  Metrics
	clock    clock.Clock
	log      *slog.Logger
	slots    *slots
	fps      *fingerprints
	procs    *counter
	listener Listener
	decorate func(*state.Snapshot)
	webhooks bool
	resolver proxy.LookupFunc
	purged   func(org string)

	mu       sync.RWMutex
	orgs     map[string]*runner
	shutdown bool
	// moving are the organizations a move is carrying away: only a stop
	// reaches them (see move.go).
	moving map[string]bool
	// registered counts the registered organizations, registering the
	// runners holding a reservation for a registration under way, for
	// workers.max_orgs.
	registered, registering int

	ready atomic.Bool
	// failing counts runners whose last commit failed; /readyz fails
	// while it is above zero.
	failing atomic.Int32
	// closing is closed when Shutdown begins: commit retries give up, so
	// that every runner gets to close its worker.
	closing chan struct{}
	epochs  atomic.Uint64
}

// commitWait bounds how long an API call waits for its change to be
// committed; a logout also waits for the worker (logoutTimeout).
const commitWait = 5 * time.Second

// ErrTimeout answers a call whose change was not done in time although the
// store accepts writes: it is still under way and may yet take effect.
var ErrTimeout = errors.New("no answer in time; the change is still under way and may yet take effect")

// New builds an empty Fleet; Boot loads the organizations.
func New(o Options) *Fleet {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Intn == nil {
		o.Intn = rand.IntN
	}
	if o.Lookup == nil {
		o.Lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	c := o.Config
	f := &Fleet{
		cfg: c, policy: lifecycle.PolicyFrom(c), store: o.Store, launch: o.Launch, archive: o.Archive,
		metrics: o.Metrics, clock: o.Clock, log: o.Log,
		fps: newFingerprints(o.Intn), procs: newCounter(), listener: o.Listener, decorate: o.Decorate, webhooks: o.Webhooks,
		resolver: o.Lookup, purged: o.Purged,
		orgs: map[string]*runner{}, moving: map[string]bool{}, closing: make(chan struct{}),
	}
	f.slots = newSlots(queue.Config{
		MaxLive:      c.Workers.MaxLive,
		MaxPerEgress: c.Workers.MaxLivePerEgress,
		Gap:          c.Workers.StartGap.Duration,
		JitterMin:    c.Workers.StartJitter[0].Duration,
		JitterMax:    c.Workers.StartJitter[1].Duration,
	}, o.Jitter, o.Clock, o.Metrics, f.grant)
	return f
}

// Boot takes the records loaded from the store, lets each runner restore
// its organization (queue what should run, start a pending archive), marks
// the fleet ready once every restored state is committed, and registers the
// config's organizations. A saved connected, QR or starting status belongs
// to the previous supervisor's workers, all gone: the API shows none of
// them, only the status the restore committed. Boot waits for those
// commits, not for the archives or launches they start: a slow disk or a
// thousand pending archives must not keep the API from answering.
func (f *Fleet) Boot(recs []lifecycle.Record) {
	now := f.clock.Now()
	restores := make(map[string]lifecycle.Restore, len(recs))
	f.mu.Lock()
	if f.shutdown {
		// A SIGTERM during the boot: nothing may start behind Shutdown.
		f.mu.Unlock()
		return
	}
	for _, rec := range recs {
		switch {
		case rec.Deleted:
		case rec.Fingerprint != "":
			f.fps.use(rec.ID, rec.Fingerprint)
		case rec.Linked:
			// Before any pick: a linked device must keep the one it was
			// registered with, so nobody else may take it.
			f.fps.forLegacy(rec.ID)
		}
	}
	for _, rec := range recs {
		r := newRunner(f, rec.ID, lifecycle.FromRecord(rec), true)
		f.orgs[rec.ID] = r
		if !rec.Deleted {
			f.registered++
		}
		var in lifecycle.Restore
		if rec.Fingerprint == "" && !rec.Deleted {
			in.Fingerprint = f.fingerprintFor(rec)
		}
		if c, ok := f.configOrg(rec.ID); ok && !rec.Deleted {
			// The config's proxy wins at each boot for its organizations.
			in.Proxy = &c.Proxy
		}
		restores[rec.ID] = in
		if !rec.Deleted {
			f.metrics.SetStatus(rec.ID, rec.Status)
		}
	}
	f.mu.Unlock()
	replies := make([]chan reply, 0, len(restores))
	for id, in := range restores {
		ch := make(chan reply, 1)
		if f.post(id, envelope{in: in, reply: ch}) {
			replies = append(replies, ch)
		}
	}
	for _, ch := range replies {
		// A commit that keeps failing is retried until Shutdown, which
		// then answers ErrNotSaved: the fleet stays unready meanwhile.
		<-ch
	}
	f.ready.Store(true)
	f.log.Info("state loaded", "organizations", len(recs), "took", f.clock.Now().Sub(now).String())

	for _, c := range f.cfg.Orgs {
		if r := f.lookup(c.ID); r != nil && r.registered() {
			continue
		}
		go func() {
			if _, err := f.Start(context.Background(), c.ID, StartOptions{Proxy: &c.Proxy}); err != nil {
				f.log.Warn("organization from the config not started", "org", c.ID, "err", err)
			}
		}()
	}
}

// fingerprintFor chooses the fingerprint of a loaded record that has none
// (imported from an earlier version).
func (f *Fleet) fingerprintFor(rec lifecycle.Record) string {
	if rec.Linked {
		return f.fps.forLegacy(rec.ID)
	}
	fp, full := f.fps.pick(rec.ID)
	if full {
		f.log.Warn("every device fingerprint is taken; this organization shares one", "org", rec.ID)
	}
	return fp
}

// Ready says whether the API may serve: the state is loaded and every
// commit went through.
func (f *Fleet) Ready() error {
	if !f.ready.Load() {
		return ErrBooting
	}
	if n := f.failing.Load(); n > 0 {
		return fmt.Errorf("saving state fails for %d organizations: %w", n, ErrNotSaved)
	}
	return nil
}

// List returns every organization's status, sorted by ID.
func (f *Fleet) List() []state.Snapshot {
	now := f.clock.Now()
	f.mu.RLock()
	runners := make([]*runner, 0, len(f.orgs))
	for _, r := range f.orgs {
		runners = append(runners, r)
	}
	f.mu.RUnlock()
	out := make([]state.Snapshot, 0, len(runners))
	for _, r := range runners {
		if v := r.view.Load(); v != nil && v.Registered() {
			out = append(out, f.snapshot(v, now))
		}
	}
	slices.SortFunc(out, func(a, b state.Snapshot) int {
		switch {
		case a.OrganizationID < b.OrganizationID:
			return -1
		case a.OrganizationID > b.OrganizationID:
			return 1
		}
		return 0
	})
	return out
}

// Get returns one organization's status.
func (f *Fleet) Get(id string) (state.Snapshot, error) {
	if err := orgid.Validate(id); err != nil {
		return state.Snapshot{}, err
	}
	if r := f.lookup(id); r != nil {
		if v := r.view.Load(); v != nil && v.Registered() {
			return f.snapshot(v, f.clock.Now()), nil
		}
	}
	return state.Snapshot{}, unknown(id)
}

func (f *Fleet) snapshot(o *lifecycle.Org, now time.Time) state.Snapshot {
	s := o.Snapshot(now, f.policy)
	f.complete(&s)
	return s
}

// complete adds to a status what the lifecycle's record does not hold:
// what a queued organization's start waits for, and the outbox counts.
func (f *Fleet) complete(s *state.Snapshot) {
	if s.Status == state.Queued {
		s.WaitingFor = f.slots.waitsFor(s.OrganizationID)
	}
	if f.decorate != nil {
		f.decorate(s)
	}
}

// ConnectedWorker returns org's worker while the organization is connected.
func (f *Fleet) ConnectedWorker(org string) (contract.Worker, bool) {
	r := f.lookup(org)
	if r == nil {
		return nil, false
	}
	v, w := r.view.Load(), r.worker.Load()
	if v == nil || w == nil || v.Status != state.Connected {
		return nil, false
	}
	return w.proc, true
}

// Start registers id if it is new and starts or links it. It never touches
// a connected, starting or queued organization (unless forced), and refuses
// with *lifecycle.HoldError while a hold lasts, a deleted one's included.
func (f *Fleet) Start(ctx context.Context, id string, opts StartOptions) (state.Snapshot, error) {
	if err := orgid.Validate(id); err != nil {
		return state.Snapshot{}, err
	}
	// No fingerprint yet: the runner picks one only for a registration
	// that commits (a refused start must not reserve one).
	return f.ask(ctx, id, lifecycle.Start{Force: opts.Force, FromConfig: f.inConfig(id), Proxy: opts.Proxy}, true, commitWait)
}

func (f *Fleet) inConfig(id string) bool {
	_, ok := f.configOrg(id)
	return ok
}

// configOrg is the [[org]] entry of id, if the config has one.
func (f *Fleet) configOrg(id string) (config.Org, bool) {
	i := slices.IndexFunc(f.cfg.Orgs, func(o config.Org) bool { return o.ID == id })
	if i < 0 {
		return config.Org{}, false
	}
	return f.cfg.Orgs[i], true
}

// Stop closes the worker and keeps the auth directory; the organization
// stays stopped (across supervisor restarts too) until started again. A
// held organization keeps its status.
func (f *Fleet) Stop(ctx context.Context, id string) (state.Snapshot, error) {
	return f.ask(ctx, id, lifecycle.Stop{}, false, commitWait)
}

// Clear archives the auth directory and relinks: the manual Bad MAC cure.
func (f *Fleet) Clear(ctx context.Context, id string) (state.Snapshot, error) {
	return f.ask(ctx, id, lifecycle.Clear{}, false, commitWait)
}

// Delete stops the organization, archives its auth directory and forgets
// it; its holds stay in a tombstone until they expire.
func (f *Fleet) Delete(ctx context.Context, id string) error {
	_, err := f.ask(ctx, id, lifecycle.Delete{}, false, commitWait)
	return err
}

// Logout unlinks the device on WhatsApp's side, archives the auth directory
// and starts the logout cooldown. The worker's logout runs on its own
// context: a caller that hangs up does not leave it half done.
func (f *Fleet) Logout(ctx context.Context, id string) (state.Snapshot, error) {
	return f.ask(ctx, id, lifecycle.Logout{}, false, logoutTimeout+commitWait)
}

// PairPhone asks the worker for a code to type on the phone instead of
// scanning the QR.
func (f *Fleet) PairPhone(ctx context.Context, id, phone string) (string, error) {
	if err := orgid.Validate(id); err != nil {
		return "", err
	}
	r := f.lookup(id)
	if r == nil || !r.registered() {
		return "", unknown(id)
	}
	v, w := r.view.Load(), r.worker.Load()
	if w == nil || v.Status != state.QRRequired {
		return "", &lifecycle.ConflictError{Org: id, Msg: fmt.Sprintf("pairing needs a running, unlinked session (status is %s)", v.Status)}
	}
	// Bounded: a frozen worker must not hold the caller's request forever.
	ctx, cancel := context.WithTimeout(ctx, pairTimeout)
	defer cancel()
	code, err := w.proc.PairPhone(ctx, phone)
	if err != nil {
		return "", workerRefused(id, "pair by phone", err)
	}
	f.post(id, envelope{in: lifecycle.PairingCode{Gen: w.gen, Code: code}})
	return code, nil
}

// Shutdown closes every worker in parallel and refuses further changes.
// The committed state keeps what should run, so the next supervisor start
// brings the same organizations back.
func (f *Fleet) Shutdown(ctx context.Context) {
	f.mu.Lock()
	if f.shutdown {
		f.mu.Unlock()
		return
	}
	f.shutdown = true
	runners := make([]*runner, 0, len(f.orgs))
	for _, r := range f.orgs {
		runners = append(runners, r)
	}
	f.mu.Unlock()
	f.slots.close()
	close(f.closing)
	// Once every runner has taken its Shutdown no launch can begin, so a
	// count of zero after that is final.
	acks := make([]chan reply, 0, len(runners))
	for _, r := range runners {
		ack := make(chan reply, 1)
		if r.post(envelope{in: lifecycle.Shutdown{}, reply: ack}) {
			acks = append(acks, ack)
		}
	}
	for _, ack := range acks {
		select {
		case <-ack:
		case <-ctx.Done():
		}
	}
	if err := f.procs.waitZero(ctx); err != nil {
		f.log.Warn("shutdown deadline passed with workers still closing", "workers", f.procs.value())
	} else {
		f.log.Info("all workers closed")
	}
}

// ask hands an operator input to the organization's runner and waits for
// the committed answer.
func (f *Fleet) ask(ctx context.Context, id string, in lifecycle.Input, create bool, wait time.Duration) (state.Snapshot, error) {
	if err := orgid.Validate(id); err != nil {
		return state.Snapshot{}, err
	}
	if !f.ready.Load() {
		return state.Snapshot{}, ErrBooting
	}
	for {
		f.mu.Lock()
		if f.shutdown {
			f.mu.Unlock()
			return state.Snapshot{}, &lifecycle.ConflictError{Org: id, Msg: "the supervisor is shutting down"}
		}
		if err := f.fenced(id, in); err != nil {
			f.mu.Unlock()
			return state.Snapshot{}, err
		}
		r := f.orgs[id]
		if r == nil && !create {
			f.mu.Unlock()
			return state.Snapshot{}, unknown(id)
		}
		// A registration reserves a place under max_orgs until its runner
		// has decided, whether or not this caller still waits for it.
		if create && (r == nil || (!r.registered() && !r.reserved)) {
			if f.registered+f.registering >= f.cfg.Workers.MaxOrgs {
				f.mu.Unlock()
				return state.Snapshot{}, fmt.Errorf("organization %s: %d organizations are registered: %w", id, f.registered, ErrTooManyOrgs)
			}
			if r == nil {
				r = newRunner(f, id, lifecycle.New(id), false)
				f.orgs[id] = r
			}
			r.reserved = true
			f.registering++
		}
		if r == nil {
			r = newRunner(f, id, lifecycle.New(id), false)
			f.orgs[id] = r
		}
		f.mu.Unlock()
		answer := make(chan reply, 1)
		if !r.post(envelope{in: in, reply: answer}) {
			continue // the runner retired meanwhile; look again
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case rep := <-answer:
			return f.decorated(rep.snap, rep.err)
		case <-ctx.Done():
			return state.Snapshot{}, ctx.Err()
		case <-timer.C:
			if f.failing.Load() > 0 {
				return state.Snapshot{}, ErrNotSaved
			}
			return state.Snapshot{}, ErrTimeout
		}
	}
}

// decorated completes a runner's answer as Get does (the outbox counts,
// the sending schedule): a runner's own snapshot has only what the
// lifecycle holds, and an action's answer read "0 queued" for an
// organization with messages waiting.
func (f *Fleet) decorated(s state.Snapshot, err error) (state.Snapshot, error) {
	if err == nil && s.OrganizationID != "" {
		f.complete(&s)
	}
	return s, err
}

func (f *Fleet) lookup(id string) *runner {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.orgs[id]
}

// post delivers an input to id's runner, if it exists.
func (f *Fleet) post(id string, e envelope) bool {
	r := f.lookup(id)
	return r != nil && r.post(e)
}

// grant hands a slot the queue admitted to its organization; a slot whose
// organization is gone goes straight back.
func (f *Fleet) grant(t queue.Ticket) {
	if r := f.lookup(t.Org); r != nil && r.epoch == t.Epoch && r.post(envelope{in: lifecycle.SlotGranted{N: t.N, Egress: t.Egress}}) {
		return
	}
	f.slots.release(t)
}

// retire removes a runner that has nothing left: an unregistered
// organization without a stored record, process, slot or archive.
func (f *Fleet) retire(r *runner) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.reserved || !r.retire() {
		return false
	}
	if f.orgs[r.id] == r {
		delete(f.orgs, r.id)
	}
	return true
}

// unreserve ends r's registration reservation, once its Start has been
// decided (registered, refused or not saved).
func (f *Fleet) unreserve(r *runner) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.reserved {
		r.reserved = false
		f.registering--
	}
}

func unknown(id string) error {
	return fmt.Errorf("organization %s: %w", id, lifecycle.ErrUnknownOrg)
}
