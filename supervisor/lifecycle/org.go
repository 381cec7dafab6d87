// Package lifecycle decides what happens to one organization: it is the pure
// transition function (state, input, now) → (state, effects) behind every
// rule of the supervisor — the start queue's slots, Bad MAC trips and the
// storm guard, the LOGOUT cooldown, replaced sessions, bans, crash backoff
// and `failed`, the QR give-up, clear, delete with its holds, and restore at
// boot.
//
// Nothing here does I/O or reads the clock. The fleet feeds inputs to Step
// one at a time per organization, commits the new Record when it changed,
// and only then makes the result visible and carries out the effects in
// order. Because the state tracks the worker process (launching, running,
// closing), the archive in flight and the queue slot, the rules that keep
// the product's promises are properties of this function and are tested as
// such: a launch is never emitted while a process exists, an archive is in
// flight or a hold lasts; an archive never while a process exists; a slot is
// given back only once its process has been reaped.
package lifecycle

import (
	"slices"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/badmac"
)

// Archive reasons: the middle word of `<org>_<reason>_<unix-ms>`.
const (
	ArchiveCorrupted = "corrupted"
	ArchiveLoggedOut = "loggedout"
	ArchiveDeleted   = "deleted"
)

// Hold reasons: why a relink is held back.
const (
	HoldLogout = "logout"
	HoldBadMAC = "bad_mac"
	HoldManual = "manual"
	HoldStorm  = "storm"
	HoldBan    = "ban"
)

// Hold keeps an organization from linking again before Until: a LOGOUT
// cooldown, the wait after a Bad MAC trip or clear, or a temporary ban. No
// API call ends it early; a delete keeps it in the tombstone.
type Hold struct {
	Until  time.Time
	Reason string
}

// Active reports whether the hold is still in force at now.
func (h Hold) Active(now time.Time) bool { return h.Until.After(now) }

// extend returns the later of h and a hold until `until`: a new, shorter
// hold never shortens one already in force.
func (h Hold) extend(until time.Time, reason string) Hold {
	if until.After(h.Until) {
		return Hold{Until: until, Reason: reason}
	}
	return h
}

func (h Hold) describe() string {
	switch h.Reason {
	case HoldLogout:
		return "a logout"
	case HoldBadMAC:
		return "a Bad MAC trip"
	case HoldManual:
		return "a manual clear"
	case HoldStorm:
		return "repeated Bad MAC trips (storm guard)"
	case HoldBan:
		return "a temporary ban"
	}
	return h.Reason
}

// Record is the durable part of an organization: what state.db holds and a
// supervisor restart starts from. A change to it is committed before anyone
// sees it.
type Record struct {
	ID string
	// Status is the status last shown. While Run is false it is the idle
	// status (stopped, logged_out, replaced, banned, failed) that holds
	// until an operator acts.
	Status state.Status
	// Reason is the event that led to Status (qr_timeout, device_removed...).
	Reason string
	// Run says the organization should have a worker.
	Run    bool
	Linked bool
	JID    string
	Hold   Hold
	BadMAC badmac.Counter
	// Crashes counts consecutive worker failures toward crash_limit.
	Crashes int
	// ArchivePending names the archive reason of an auth directory that
	// must be moved aside before a worker may start on it again.
	ArchivePending string
	// Deleted marks a tombstone: the organization is gone for the API, but
	// its holds and storm history stay until they expire, so a delete can
	// never wash a hold away.
	Deleted bool
	// Fingerprint is the encoded device fingerprint chosen at registration.
	Fingerprint string
	FromConfig  bool
	AddedAt     time.Time
	// Proxy is where the organization's worker connects through (socks5,
	// http or https URL with its credentials); empty: direct.
	Proxy string
	// LastError is the worker's last failure, as the status object's
	// last_error shows it. It is part of the record so that a status the
	// API shows, its reason included, has been committed, and a failed
	// organization still says why after the supervisor restarts.
	LastError string
}

// Equal reports whether two records hold the same values (times compared
// as instants), which decides whether a step needs a commit.
func (r Record) Equal(o Record) bool {
	return r.ID == o.ID && r.Status == o.Status && r.Reason == o.Reason && r.Run == o.Run &&
		r.Linked == o.Linked && r.JID == o.JID && r.Hold.Until.Equal(o.Hold.Until) &&
		r.Hold.Reason == o.Hold.Reason && countersEqual(r.BadMAC, o.BadMAC) && r.Crashes == o.Crashes &&
		r.ArchivePending == o.ArchivePending && r.Deleted == o.Deleted && r.Fingerprint == o.Fingerprint &&
		r.FromConfig == o.FromConfig && r.AddedAt.Equal(o.AddedAt) && r.Proxy == o.Proxy && r.LastError == o.LastError
}

func countersEqual(a, b badmac.Counter) bool {
	return a.Count == b.Count && a.LastErrorAt.Equal(b.LastErrorAt) && a.TotalTrips == b.TotalTrips &&
		slices.Equal(a.Recent, b.Recent) &&
		slices.EqualFunc(a.Trips, b.Trips, func(x, y time.Time) bool { return x.Equal(y) })
}

// ProcPhase is where the organization's worker process is.
type ProcPhase int

const (
	ProcNone      ProcPhase = iota // no process
	ProcLaunching                  // spawning and starting the session
	ProcRunning                    // live
	ProcClosing                    // asked to close; not reaped yet
)

// Proc is the organization's worker process as the lifecycle knows it.
type Proc struct {
	Phase ProcPhase
	// Gen numbers launches: inputs about an older process are ignored.
	Gen int
	PID int
	// Sandbox is what the running worker said of its sandbox.
	Sandbox string
	// Cancelled: a stale launch was asked to stop.
	Cancelled bool
	// Crashed: the process failed, so it is killed without a graceful stop.
	Crashed bool
}

// SlotPhase is where the organization stands in the start queue.
type SlotPhase int

const (
	SlotNone    SlotPhase = iota
	SlotWaiting           // asked for a slot
	SlotHeld              // granted, until given back
	// SlotResolving: the proxy's host name is being looked up; the
	// request joins the queue once its egress key is known.
	SlotResolving
)

// Slot is the organization's place in the start queue.
type Slot struct {
	Phase SlotPhase
	N     uint64 // ticket number of the current request
	// Used: a launch ran on this slot; it is given back once that
	// process is reaped, and a new start queues again.
	Used bool
	// Proxy is the proxy the request was made with: its worker connects
	// through it.
	Proxy string
	// Egress is the key the slot counts against (shared/proxy.Key: the
	// proxy's resolved address and port, or direct), fixed when the
	// request is made so that giving it back counts on the same key
	// whatever the name resolves to later; "" while resolving.
	Egress string
}

// egress is the key the slot counts against.
func (s Slot) egress() string { return s.Egress }

// QR is the code on offer while the organization waits for a scan.
type QR struct {
	Code      string
	PNG       string
	ExpiresAt time.Time
}

// Org is everything the lifecycle knows about one organization: its Record
// and the runtime state that a supervisor restart does not keep.
type Org struct {
	Record
	Proc Proc
	Slot Slot
	// Session is what the live worker last reported (starting, restoring,
	// qr_required, connected, disconnected).
	Session state.Status
	// RetryAt delays the next start after a crash.
	RetryAt time.Time
	// Restart closes a live worker so that a new one starts (start with force).
	Restart         bool
	Archiving       bool
	ArchiveFailures int
	ArchiveRetryAt  time.Time
	// Purged: the tombstone is gone from state.db.
	Purged       bool
	ShuttingDown bool

	ConnectedSince time.Time
	QR             QR
	PairingCode    string
	LastEvent      string
	// WakeAt is when the organization next needs a Tick: a hold, a crash
	// backoff, an archive retry or a tombstone's expiry. Zero: never.
	WakeAt time.Time
}

// New is an organization that was never registered: a Start registers it.
func New(id string) Org {
	return Org{Record: Record{ID: id, Deleted: true}}
}

// FromRecord is the organization as loaded from state.db at boot.
func FromRecord(r Record) Org { return Org{Record: r} }

// Registered reports whether the API knows the organization.
func (o Org) Registered() bool { return !o.Deleted }

func idle(s state.Status) bool {
	switch s {
	case state.Stopped, state.LoggedOut, state.Replaced, state.Banned, state.Failed:
		return true
	}
	return false
}
