package driver

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/soak/schedule"
)

// Message is one message the API accepted.
type Message struct {
	Org, ID, WAID, To, Text, Key string
}

// Journal is what the run did, for the checks and the report: what each
// organization went through and every message accepted.
type Journal struct {
	mu          sync.Mutex
	events      map[schedule.Kind]int
	disruptions map[string][]time.Time // per org: when its sends could be cut off
	trips       map[string]int         // Bad MAC trips the run caused, per org
	logouts     map[string]int         // LOGOUTs, per org
	messages    []Message
	sendRetries int // send calls that went again with the same key (the API was down)
	keyRepeats  int // deliberate repeats of an accepted key
	// findings are wrong states seen on the way that do not stop the run,
	// once per kind of sentence.
	findings []string
}

func newJournal() *Journal {
	return &Journal{events: map[schedule.Kind]int{}, disruptions: map[string][]time.Time{},
		trips: map[string]int{}, logouts: map[string]int{}}
}

func (j *Journal) event(k schedule.Kind) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events[k]++
}

func (j *Journal) disrupted(orgs ...string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := time.Now()
	for _, o := range orgs {
		j.disruptions[o] = append(j.disruptions[o], now)
	}
}

func (j *Journal) tripped(org string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.trips[org]++
}

func (j *Journal) loggedOut(org string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.logouts[org]++
}

func (j *Journal) accepted(m Message) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.messages = append(j.messages, m)
}

func (j *Journal) retried() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sendRetries++
}

func (j *Journal) repeated() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keyRepeats++
}

// found records a wrong state seen on the way; the run goes on, so that
// one finding does not hide the others.
func (j *Journal) found(finding string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !slices.Contains(j.findings, finding) {
		j.findings = append(j.findings, finding)
	}
}

// Findings are the wrong states seen on the way.
func (j *Journal) Findings() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.findings...)
}

// Events counts the disruptions by kind, each organization of an event
// once for org events (a storm on three organizations is three).
func (j *Journal) Events() map[schedule.Kind]int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return maps.Clone(j.events)
}

// Disruptions is how many disruptions org went through between from and to.
func (j *Journal) Disruptions(org string, from, to time.Time) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, t := range j.disruptions[org] {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return n
}

// Trips and Logouts are what the run did to org.
func (j *Journal) Trips(org string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.trips[org]
}

func (j *Journal) Logouts(org string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.logouts[org]
}

// Messages is every message accepted, in acceptance order.
func (j *Journal) Messages() []Message {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Message(nil), j.messages...)
}

// SendRetries and KeyRepeats count the send calls made again with an
// idempotency key already used: because the API was down, or on purpose.
func (j *Journal) SendRetries() (retries, repeats int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sendRetries, j.keyRepeats
}
