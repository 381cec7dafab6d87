// Package state names the states an organization's session can be in and
// the status object the status API returns. The first four strings are the
// ones the old Node servers used, so existing Django callers keep working.
package state

import "time"

// Status is the `status` field of an organization.
type Status string

const (
	Connected    Status = "connected"    // logged in and online
	Disconnected Status = "disconnected" // lost the socket, reconnecting by itself
	QRRequired   Status = "qr_required"  // not linked; a QR is on offer
	Restoring    Status = "restoring"    // worker starting with an existing auth directory
	Queued       Status = "queued"       // waiting for a slot or for the start gap
	Starting     Status = "starting"     // worker process spawning
	Cooldown     Status = "cooldown"     // a relink is held back until CooldownUntil
	LoggedOut    Status = "logged_out"   // WhatsApp ended the link; no automatic restart
	Replaced     Status = "replaced"     // another client took the session; no automatic restart
	Banned       Status = "banned"       // temporary ban; restart only after its expiry
	Stopped      Status = "stopped"      // stopped by an operator
	Failed       Status = "failed"       // the worker keeps crashing; given up until an operator acts
)

// All lists every status, in the order of the design's table. Metrics export
// one series per status so that dashboards see a 0 rather than a gap.
var All = []Status{Connected, Disconnected, QRRequired, Restoring, Queued, Starting,
	Cooldown, LoggedOut, Replaced, Banned, Stopped, Failed}

// Live reports whether a worker process occupies one of the max_live slots
// in this status.
func (s Status) Live() bool {
	switch s {
	case Connected, Disconnected, QRRequired, Restoring, Starting:
		return true
	}
	return false
}

// BadMAC is the Bad MAC part of the status object.
type BadMAC struct {
	Count       int        `json:"count"`
	LastErrorAt *time.Time `json:"last_error_at"`
	Trips       int        `json:"trips"`
}

// Snapshot is the status object of one organization, as the status API
// returns it.
type Snapshot struct {
	OrganizationID string     `json:"organization_id"`
	Status         Status     `json:"status"`
	QR             string     `json:"qr,omitempty"`
	QRCode         string     `json:"qr_code,omitempty"`
	QRExpiresAt    *time.Time `json:"qr_expires_at,omitempty"`
	PairingCode    string     `json:"pairing_code,omitempty"`
	JID            string     `json:"jid,omitempty"`
	ConnectedSince *time.Time `json:"connected_since,omitempty"`
	RetryCount     int        `json:"retry_count"`
	BadMAC         BadMAC     `json:"bad_mac"`
	CooldownUntil  *time.Time `json:"cooldown_until"`
	LastEvent      string     `json:"last_event,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	// WaitingFor is what a queued organization's start waits for in the
	// start queue: max_live, max_live_per_egress, turn or start_gap; empty
	// otherwise (a crash backoff shows in last_error and retry_count).
	WaitingFor string `json:"waiting_for,omitempty"`
	WorkerPID  int    `json:"worker_pid,omitempty"`
	// Sandbox is what confines the running worker ("landlock abi 7: fs,
	// net, scope; ..." or "off"), as the worker reported it at start.
	Sandbox string `json:"sandbox,omitempty"`
	// Proxy is the organization's proxy with its password as ***; Egress
	// is where its worker connects from (the proxy without credentials,
	// or "direct"), the key of workers.max_live_per_egress.
	Proxy  string `json:"proxy,omitempty"`
	Egress string `json:"egress"`
	Outbox Outbox `json:"outbox"`
	// SendRestrictedUntil is set while WhatsApp's new-chat restriction
	// (463) holds messages to contacts never messaged before.
	SendRestrictedUntil *time.Time `json:"send_restricted_until"`
	Sending             Sending    `json:"sending"`
	// Node is the cluster node that owns the organization; empty on one host.
	Node string `json:"node,omitempty"`
}

// Sending is the organization's sending schedule today: its daily limit (0
// = none; lower while a new number warms up), the messages sent in its
// local day, and when what the schedule holds may go again (the next local
// day once the limit is reached; the end of the quiet hours for
// broadcasts), null when nothing is held.
type Sending struct {
	LimitToday int        `json:"limit_today"`
	SentToday  int        `json:"sent_today"`
	NextWindow *time.Time `json:"next_window"`
}

// Outbox is an organization's messages in the status object: those
// waiting, and those sent and failed since midnight UTC.
type Outbox struct {
	Queued      int `json:"queued"`
	SentToday   int `json:"sent_today"`
	FailedToday int `json:"failed_today"`
}
