package fleet

import (
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// stepEvents are the webhook events of one transition of org id, committed
// with its record: a status change, and an auth directory cleared for a
// relink (the Bad MAC cure or a manual clear).
func stepEvents(id string, prev, next lifecycle.Org, effects []lifecycle.Effect, now time.Time) []webhook.Event {
	var out []webhook.Event
	if next.Status != prev.Status || next.Deleted != prev.Deleted {
		data := map[string]any{"previous": string(prev.Status)}
		if next.Deleted {
			data["deleted"] = true
		}
		out = append(out, webhook.NewEvent(webhook.StatusChanged, id, string(next.Status), next.Reason, now, data))
	}
	for _, eff := range effects {
		if c, ok := eff.(lifecycle.Count); ok && c.Metric == lifecycle.MetricSessionCleared {
			out = append(out, webhook.NewEvent(webhook.SessionCleared, id, string(next.Status), c.Label, now,
				map[string]any{"trips": next.BadMAC.TotalTrips}))
		}
	}
	return out
}
