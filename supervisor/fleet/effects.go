package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"google.golang.org/grpc/status"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/supervisor/backoff"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/queue"
)

// launchTimeout bounds spawning a worker and its Start call.
const launchTimeout = time.Minute

// logoutTimeout bounds the worker's remote logout; pairTimeout asking the
// worker for a pairing code.
const (
	logoutTimeout = 30 * time.Second
	pairTimeout   = 30 * time.Second
)

// ticket names slot request n, counted on egress.
func (r *runner) ticket(n uint64, egress string) queue.Ticket {
	return queue.Ticket{Org: r.id, Epoch: r.epoch, N: n, Egress: egress}
}

// run carries out one effect. Slow ones (processes, archives) run in the
// background and report back as inputs; the lifecycle never asks for two
// of them at once for one organization.
func (r *runner) run(e lifecycle.Effect, now time.Time) {
	f := r.f
	switch e := e.(type) {
	case lifecycle.ResolveEgress:
		r.resolve(e)
	case lifecycle.RequestSlot:
		f.slots.request(r.ticket(e.N, e.Egress))
	case lifecycle.ReleaseSlot:
		f.slots.release(r.ticket(e.N, e.Egress))
	case lifecycle.LaunchDone:
		f.slots.started(r.ticket(e.N, e.Egress))
	case lifecycle.Launch:
		r.launch(e, now)
	case lifecycle.CancelLaunch:
		if r.cancel != nil {
			r.cancel()
		}
	case lifecycle.Close:
		r.close(e)
	case lifecycle.Archive:
		r.archive(e)
	case lifecycle.Purge:
		r.purge()
	case lifecycle.LogoutWorker:
		r.logout(e)
	case lifecycle.Count:
		r.count(e)
	case lifecycle.ForgetMetrics:
		f.metrics.Forget(r.id)
	case lifecycle.Note:
		r.note(e.Level, e.Msg, e.Attrs...)
	}
}

func (r *runner) launch(e lifecycle.Launch, began time.Time) {
	f := r.f
	ctx, cancel := context.WithTimeout(context.Background(), launchTimeout)
	r.cancel = cancel
	req := &pb.StartRequest{
		OrganizationId:  r.id,
		AuthDir:         absPath(f.cfg.AuthDir(r.id)),
		QrGiveUpAfterMs: f.cfg.QR.GiveUpAfter.Milliseconds(),
		LogLevel:        f.cfg.LogLevel,
		Fingerprint:     r.org.Fingerprint,
		Proxy:           e.Proxy,
		// The record says the store holds a device: a worker that finds
		// none must not connect (a registration right after a LOGOUT whose
		// commit was lost) but report device_missing.
		Restore: e.Restoring,
		Sandbox: f.cfg.Workers.Sandbox,
	}
	if em := f.cfg.WhatsApp.Emulator; em != nil {
		req.EmulatorUrl = em.URL
	}
	f.procs.add(1)
	// The key the slot was counted on, resolved when it was requested.
	egress := r.org.Slot.Egress
	r.note(slog.LevelInfo, "starting worker", "restoring", e.Restoring, "egress", egress)
	// After the log line, so the gap between two logged starts is never
	// shorter than start_gap either.
	f.slots.spawned(r.ticket(r.org.Slot.N, egress), f.clock.Now())
	go func() {
		defer cancel()
		proc, resp, err := f.spawn(ctx, r.id, req)
		if err != nil {
			f.procs.add(-1)
			r.post(envelope{in: lifecycle.LaunchFailed{
				Gen: e.Gen, Err: err.Error(), Cancelled: errors.Is(ctx.Err(), context.Canceled),
				BinaryChanged: errors.Is(err, ErrBinaryChanged),
			}})
			return
		}
		f.metrics.ObserveStart(f.clock.Now().Sub(began))
		r.note(slog.LevelInfo, "worker started", "pid", proc.PID(), "restoring", resp.Restoring, "device_missing", resp.DeviceMissing, "sandbox", resp.Sandbox)
		r.post(envelope{in: lifecycle.Launched{
			Gen: e.Gen, PID: proc.PID(), Restoring: resp.Restoring, DeviceMissing: resp.DeviceMissing,
			Sandbox: resp.Sandbox,
		}, proc: proc})
	}()
}

// resolveTimeout bounds looking up a proxy's host name.
const resolveTimeout = 10 * time.Second

// resolve looks up the proxy's host for the slot request's egress key, off
// the runner: a slow resolver must not hold the organization's other inputs.
func (r *runner) resolve(e lifecycle.ResolveEgress) {
	f := r.f
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		defer cancel()
		key, err := proxy.Resolve(ctx, e.Proxy, f.resolver)
		in := lifecycle.EgressResolved{N: e.N, Egress: key}
		if err != nil {
			in.Err, in.Temporary = err.Error(), temporaryLookup(ctx, err)
		}
		r.post(envelope{in: in})
	}()
}

// temporaryLookup tells a lookup worth another try (a timeout, a server
// failure) from a name that does not exist or a URL that cannot resolve.
func temporaryLookup(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns) && !dns.IsNotFound
}

// spawn starts the process and its session; on an error nothing of it is
// left running.
func (f *Fleet) spawn(ctx context.Context, id string, req *pb.StartRequest) (Worker, *pb.StartResponse, error) {
	proc, err := f.launch(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	resp, err := proc.Start(ctx, req)
	if err != nil {
		proc.Kill()
		return nil, nil, fmt.Errorf("start session: %s", status.Convert(err).Message())
	}
	return proc, resp, nil
}

// close ends the worker and reports once its process has been reaped: only
// then may its slot go to another organization or its directory be archived.
func (r *runner) close(e lifecycle.Close) {
	f := r.f
	proc := r.proc
	r.proc = nil
	r.worker.Store(nil)
	f.metrics.SetRSS(r.id, 0)
	if proc == nil {
		r.post(envelope{in: lifecycle.Reaped{Gen: e.Gen}})
		return
	}
	r.note(slog.LevelInfo, "closing worker", "graceful", e.Graceful)
	timeout := f.cfg.Workers.StopTimeout.Duration
	go func() {
		if e.Graceful {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			_ = proc.Stop(ctx)
			cancel()
		}
		proc.Kill()
		f.procs.add(-1)
		r.post(envelope{in: lifecycle.Reaped{Gen: e.Gen}})
	}()
}

func (r *runner) archive(e lifecycle.Archive) {
	f := r.f
	keep := f.cfg.BadMAC.KeepArchives
	go func() {
		path, err := f.archive.Move(r.id, e.Reason, f.clock.Now())
		if err != nil && path == "" {
			r.post(envelope{in: lifecycle.ArchiveFailed{Reason: e.Reason, Err: err.Error()}})
			return
		}
		if err != nil {
			// Moved, but the directory's fsync failed: the move is done
			// as far as any worker can tell.
			r.note(slog.LevelWarn, "auth directory moved but not yet durable", "err", err)
		}
		removed, err := f.archive.Prune(r.id, keep)
		if err != nil {
			r.note(slog.LevelError, "pruning old archives failed", "err", err)
		}
		for _, p := range removed {
			r.note(slog.LevelInfo, "old archive removed", "archive", filepath.Base(p))
		}
		r.post(envelope{in: lifecycle.Archived{Reason: e.Reason, Path: path}})
	}()
}

// purge forgets a tombstone whose holds have expired, retrying while the
// store refuses like a commit does.
func (r *runner) purge() {
	f := r.f
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := f.store.DeleteOrg(ctx, r.id)
		cancel()
		if err == nil {
			r.stored = false
			if f.purged != nil {
				f.purged(r.id)
			}
			return
		}
		f.metrics.PersistError()
		wait := backoff.Delay(100*time.Millisecond, 5*time.Second, attempt)
		r.note(slog.LevelError, "forgetting a deleted organization failed; retrying", "err", err, "retry_in", wait.String())
		select {
		case <-time.After(wait):
		case <-f.closing:
			return
		}
	}
}

// logout runs the worker's remote logout on its own context, so that a
// caller who hangs up does not cut it off halfway.
func (r *runner) logout(e lifecycle.LogoutWorker) {
	proc := r.proc
	if proc == nil {
		r.post(envelope{in: lifecycle.LogoutDone{Gen: e.Gen, Err: "the worker is gone"}})
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), logoutTimeout)
		defer cancel()
		msg := ""
		if err := proc.Logout(ctx); err != nil {
			msg = status.Convert(err).Message()
		}
		r.post(envelope{in: lifecycle.LogoutDone{Gen: e.Gen, Err: msg}})
	}()
}

func (r *runner) count(c lifecycle.Count) {
	m, id := r.f.metrics, r.id
	switch c.Metric {
	case lifecycle.MetricBadMACError:
		m.BadMACError(id)
	case lifecycle.MetricBadMACTrip:
		m.BadMACTrip(id)
	case lifecycle.MetricSessionCleared:
		m.SessionCleared(id, c.Label)
	case lifecycle.MetricLogout:
		m.Logout(id, c.Label)
	case lifecycle.MetricWorkerRestart:
		m.WorkerRestart(id, c.Label)
	case lifecycle.MetricQRCode:
		m.QRCode(id)
	case lifecycle.MetricDecryptFailure:
		m.DecryptFailure(id, c.Label)
	}
}

// workerRefused turns a worker's refusal (not linked yet, already linked,
// not connected) into a conflict that carries the worker's own sentence.
func workerRefused(id, action string, err error) error {
	return &lifecycle.ConflictError{Org: id, Msg: fmt.Sprintf("%s: %s", action, status.Convert(err).Message())}
}

// absPath gives the worker an absolute auth directory, so it does not
// depend on the working directory it inherits.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
