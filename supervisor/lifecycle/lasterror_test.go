package lifecycle

import "testing"

// The worker's last failure is part of the record: a step that changes
// only it is committed, as every field the status object shows, and a
// failed organization still says why after the supervisor restarts. It
// lived outside the record, and `status` after a restart showed "failed"
// with no reason.
func TestLastErrorIsPartOfTheRecord(t *testing.T) {
	before := Record{ID: "2"}
	o := FromRecord(before)
	o.LastError = "start session: connect for QR pairing: dial tcp: lookup web.whatsapp.com: no such host"
	if o.Record.Equal(before) {
		t.Fatal("a new last error leaves the record equal, so it is never committed")
	}
	if got := FromRecord(o.Record).Snapshot(o.AddedAt, Policy{}).LastError; got != o.LastError {
		t.Fatalf("reloaded from the record, last_error = %q", got)
	}
}
