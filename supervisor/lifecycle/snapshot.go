package lifecycle

import (
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// Snapshot is the status object of the organization as of now.
func (o Org) Snapshot(now time.Time, p Policy) state.Snapshot {
	s := state.Snapshot{
		OrganizationID: o.ID,
		Status:         o.Status,
		JID:            o.JID,
		RetryCount:     o.Crashes,
		LastEvent:      o.LastEvent,
		LastError:      o.LastError,
		BadMAC: state.BadMAC{
			Count: p.BadMAC.Current(o.BadMAC, now),
			Trips: o.BadMAC.TotalTrips,
		},
		CooldownUntil: utcIfSet(o.Hold.Until, now),
		WorkerPID:     o.Proc.PID,
		Sandbox:       o.Proc.Sandbox,
		Egress:        proxy.Egress(o.Proxy),
	}
	if o.Proxy != "" {
		s.Proxy = proxy.Redact(o.Proxy)
	}
	if o.Slot.Egress != "" {
		// A worker, or its request, counts where it was queued: the
		// resolved key, which may differ from the proxy as written.
		s.Egress = o.Slot.Egress
	}
	if s.LastEvent == "" {
		s.LastEvent = o.Reason
	}
	if !o.BadMAC.LastErrorAt.IsZero() {
		t := o.BadMAC.LastErrorAt.UTC()
		s.BadMAC.LastErrorAt = &t
	}
	if o.Status == state.QRRequired {
		s.PairingCode = o.PairingCode
	}
	if o.QR.Code != "" && o.Status == state.QRRequired {
		s.QR, s.QRCode = o.QR.PNG, o.QR.Code
		t := o.QR.ExpiresAt.UTC()
		s.QRExpiresAt = &t
	}
	if !o.ConnectedSince.IsZero() && (o.Status == state.Connected || o.Status == state.Disconnected) {
		t := o.ConnectedSince.UTC()
		s.ConnectedSince = &t
	}
	return s
}

// utcIfSet is t as a UTC pointer while it lies after now, nil otherwise: a
// hold that ended shows as null.
func utcIfSet(t, now time.Time) *time.Time {
	if !t.After(now) {
		return nil
	}
	u := t.UTC()
	return &u
}
