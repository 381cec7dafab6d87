package lifecycle

import "log/slog"

// Effect is something the fleet must do for the organization, in the order
// Step returns them, after the new Record is committed.
type Effect interface{ effect() }

type (
	// RequestSlot joins the start queue with ticket N, counted on Egress
	// (where the worker will connect from: shared/proxy.Egress).
	RequestSlot struct {
		N      uint64
		Egress string
	}
	// ResolveEgress looks up the host of Proxy, whose egress key request N
	// needs; EgressResolved follows.
	ResolveEgress struct {
		N     uint64
		Proxy string
	}
	// ReleaseSlot leaves the queue or gives slot N back.
	ReleaseSlot struct {
		N      uint64
		Egress string
	}
	// LaunchDone tells the queue that the start on slot N has an outcome,
	// so the next one may be admitted.
	LaunchDone struct {
		N      uint64
		Egress string
	}
	// Launch spawns a worker and starts its session. Restoring is what the
	// lifecycle expects to find in the store: the worker is told, and one
	// that finds no device reports device_missing instead of connecting.
	Launch struct {
		Gen       int
		Restoring bool
		// Proxy is the one the slot was counted under, which may be older
		// than the record's: a changed proxy applies from the next start.
		Proxy string
	}
	// CancelLaunch stops launch Gen; LaunchFailed{Cancelled} follows once
	// no process of it is left.
	CancelLaunch struct{ Gen int }
	// Close ends worker Gen (asking it to stop first when Graceful); Reaped
	// follows once the process has exited.
	Close struct {
		Gen      int
		Graceful bool
	}
	// Archive moves the auth directory aside; Archived or ArchiveFailed follows.
	Archive struct{ Reason string }
	// Purge deletes the tombstone from state.db, retrying until it can.
	Purge struct{}
	// LogoutWorker asks worker Gen to unlink the device; LogoutDone follows.
	LogoutWorker struct{ Gen int }
	// Count increments a counter metric of the organization.
	Count struct {
		Metric Metric
		Label  string
	}
	// ForgetMetrics drops the organization's series (it was deleted).
	ForgetMetrics struct{}
	// Note is a log line explaining a decision.
	Note struct {
		Level slog.Level
		Msg   string
		Attrs []any
	}
)

// Metric names the counters a step may increment.
type Metric int

const (
	MetricBadMACError    Metric = iota
	MetricBadMACTrip            // a trip of the Bad MAC counter
	MetricSessionCleared        // Label: bad_mac_errors or manual
	MetricLogout                // Label: the logout reason
	MetricWorkerRestart         // Label: crash, unhealthy, start_failed
	MetricQRCode                // a QR offered
	MetricDecryptFailure        // Label: the failure reason
)

func (RequestSlot) effect()   {}
func (ResolveEgress) effect() {}
func (ReleaseSlot) effect()   {}
func (LaunchDone) effect()    {}
func (Launch) effect()        {}
func (CancelLaunch) effect()  {}
func (Close) effect()         {}
func (Archive) effect()       {}
func (Purge) effect()         {}
func (LogoutWorker) effect()  {}
func (Count) effect()         {}
func (ForgetMetrics) effect() {}
func (Note) effect()          {}
