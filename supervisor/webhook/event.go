// Package webhook delivers the supervisor's events to the operator's URL
// (a Django view): each event is committed to state.db where it happens,
// then POSTed signed with a timestamp, at least once and in order per
// organization, with backoff; after give_up_after it is a dead letter,
// kept and listed until retried. Delivery never holds up the lifecycle, a
// send or an API answer.
package webhook

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"time"
)

// The event kinds a receiver can get.
const (
	StatusChanged     = "status_changed"
	SessionCleared    = "session_cleared"
	MessageStatus     = "message_status"
	BroadcastProgress = "broadcast_progress"
	BroadcastDone     = "broadcast_done"
	SendRestricted    = "send_restricted"
	MessageReceived   = "message_received"
)

// Event is one notification. ID is what receivers deduplicate by: a
// delivery whose answer was lost is made again with the same ID.
type Event struct {
	Seq    int64
	ID     string
	Org    string
	Kind   string
	Status string
	Reason string
	// At is when the supervisor recorded the event, on its own clock: the
	// body's timestamp, which receivers sort by. A time WhatsApp reported
	// (a receipt's, whole seconds on the phone's side) goes in Data, so
	// that a delivered receipt never sorts before its message's sent.
	At time.Time
	// Data is the event's own fields as JSON.
	Data json.RawMessage

	// Delivery state. Created is when the event was committed, which
	// webhook.give_up_after counts from.
	Created   time.Time
	Attempts  int
	NextAt    time.Time
	LastError string
	DeadAt    time.Time
}

// NewEvent makes an event with a fresh ID; data is marshalled to JSON.
func NewEvent(kind, org, status, reason string, at time.Time, data any) Event {
	raw, err := json.Marshal(data)
	if err != nil || data == nil {
		raw = json.RawMessage("{}")
	}
	return Event{ID: "evt_" + strings.ToLower(rand.Text()), Org: org, Kind: kind, Status: status, Reason: reason, At: at, Data: raw}
}

// Payload is the JSON a receiver gets.
type Payload struct {
	ID             string          `json:"id"`
	Event          string          `json:"event"`
	OrganizationID string          `json:"organization_id"`
	Status         string          `json:"status"`
	Reason         string          `json:"reason"`
	Timestamp      string          `json:"timestamp"`
	Data           json.RawMessage `json:"data"`
}

// TimestampFormat is how times appear in bodies: RFC 3339 in UTC with
// exactly three decimals, so that timestamps also sort as strings (with
// RFC3339Nano, "10:00:00Z" sorted after "10:00:00.123Z").
const TimestampFormat = "2006-01-02T15:04:05.000Z07:00"

// Body is the event as POSTed; the same event always gives the same bytes.
func (e Event) Body() []byte {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	b, _ := json.Marshal(Payload{ID: e.ID, Event: e.Kind, OrganizationID: e.Org, Status: e.Status, Reason: e.Reason,
		Timestamp: e.At.UTC().Format(TimestampFormat), Data: data})
	return b
}
