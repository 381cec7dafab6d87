// Package outbox sends what the Django apps queue: single messages and
// broadcasts, committed to state.db before they are accepted, paced per
// organization, and never lost or doubled.
//
// A message's WhatsApp ID is fixed when it is accepted. One sender per
// organization runs while the organization is connected: it marks a message
// sending (committed), asks the worker to send it with that ID, and records
// the server's answer. A crash between the two commits leaves it sending,
// and it is sent again with the same ID, which the recipient's phone shows
// once.
//
// The rules are pure code in this package's policy.go, with the time as a
// parameter: pacing (min_interval, a per-minute token bucket, jitter), a
// refusal's meaning (463: hold the message and new contacts; others:
// fail), what a message without an answer becomes, when a broadcast is
// done and how often its progress is reported. Package store only runs
// the SQL, applying those rules inside the transactions that need them.
package outbox

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"strings"
	"time"
)

// Status is where a message stands.
type Status string

const (
	Queued    Status = "queued"
	Sending   Status = "sending"
	Sent      Status = "sent"      // the server acked it
	Delivered Status = "delivered" // the recipient's phone has it
	Read      Status = "read"
	Failed    Status = "failed"
)

// rank orders the statuses a message moves through, so that a late
// delivery receipt never moves a read message back.
func (s Status) rank() int {
	switch s {
	case Queued:
		return 0
	case Sending:
		return 1
	case Sent:
		return 2
	case Delivered:
		return 3
	case Read:
		return 4
	}
	return -1
}

// Pending reports whether the message still waits to be sent.
func (s Status) Pending() bool { return s == Queued || s == Sending }

// Message is one outgoing text, or one file with Text as its caption.
type Message struct {
	Seq            int64
	ID             string
	Org            string
	To             string
	Text           string
	WAID           string
	Status         Status
	Reason         string
	IdempotencyKey string
	Broadcast      string
	QueuedAt       time.Time
	SendingAt      time.Time
	SentAt         time.Time
	DeliveredAt    time.Time
	ReadAt         time.Time
	FailedAt       time.Time
	Attempts       int
	// Media names an uploaded file ("sha256:<hex>"); "" for a text.
	Media string
}

// JobStatus is where a broadcast stands.
type JobStatus string

const (
	JobQueued    JobStatus = "queued"  // waiting for one of max_jobs
	JobSending   JobStatus = "sending" // holds one of max_jobs
	JobStalled   JobStatus = "stalled" // no progress for stalled_after; gave its turn up
	JobDone      JobStatus = "done"
	JobCancelled JobStatus = "cancelled"
)

// Active reports whether the job still has work.
func (s JobStatus) Active() bool { return s == JobQueued || s == JobSending || s == JobStalled }

// Broadcast is one text to many recipients, sent as single messages
// through the same outbox and pacing.
type Broadcast struct {
	Seq            int64
	ID             string
	Org            string
	Text           string
	Status         JobStatus
	IdempotencyKey string
	// RecipientsHash names the job's normalised recipient list
	// (RecipientsHash): a reused idempotency key matches only the same list.
	RecipientsHash string
	Total          int
	CreatedAt      time.Time
	StartedAt      time.Time
	FinishedAt     time.Time
	ProgressAt     time.Time
	Counts         Counts
	// Media names the file every message of the job carries; "" for a text.
	Media string
}

// Counts are a broadcast's messages by outcome.
type Counts struct {
	Pending int
	Sent    int // sent, delivered or read
	Failed  int
}

// Filter selects messages for a list, newest first.
type Filter struct {
	Status Status
	Limit  int
	// AfterSeq continues a list below this message's position.
	AfterSeq int64
}

// newID names a message or broadcast for the API: a prefix and 26
// characters of randomness, safe in a URL.
func newID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// newWAID is a WhatsApp message ID of the shape whatsmeow's
// GenerateMessageID gives a web client ("3EB0" and 18 upper-case hex
// digits), so a message sent through this outbox looks like any other.
func newWAID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return "3EB0" + strings.ToUpper(hex.EncodeToString(b))
}
