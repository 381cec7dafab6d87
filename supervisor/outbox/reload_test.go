package outbox_test

import (
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// A move writes an organization into state.db behind the outbox's back
// (and removes one): Reload makes its memory follow, counts and 463
// restriction included.
func TestReloadFollowsAMovedOrganization(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	now := h.clk.Now()
	register(t, h.st, "moved")
	if _, _, err := h.st.InsertMessage(bg, outbox.Message{ID: "m1", Org: "moved", To: "573001", Text: "t", WAID: "3EB0X", QueuedAt: now}); err != nil {
		t.Fatal(err)
	}
	until := now.Add(time.Hour)
	if err := h.st.Restrict(bg, "moved", until, now); err != nil {
		t.Fatal(err)
	}
	look := func() state.Snapshot {
		s := state.Snapshot{OrganizationID: "moved"}
		h.o.Decorate(&s)
		return s
	}
	if s := look(); s.Outbox.Queued != 0 || s.SendRestrictedUntil != nil {
		t.Fatalf("the outbox knew of the rows before the reload: %+v", s)
	}
	if err := h.o.Reload(bg, "moved"); err != nil {
		t.Fatal(err)
	}
	if s := look(); s.Outbox.Queued != 1 || s.SendRestrictedUntil == nil || !s.SendRestrictedUntil.Equal(until) {
		t.Fatalf("after the reload: %+v, want 1 queued and restricted until %s", s, until)
	}
	if err := h.st.ForgetOrg(bg, "moved"); err != nil {
		t.Fatal(err)
	}
	if err := h.o.Reload(bg, "moved"); err != nil {
		t.Fatal(err)
	}
	if s := look(); s.Outbox.Queued != 0 || s.SendRestrictedUntil != nil {
		t.Fatalf("after the organization left: %+v", s)
	}
}
