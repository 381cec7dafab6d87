package check

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/wa-sidecar/wa-sidecar/soak/hooks"
	"github.com/wa-sidecar/wa-sidecar/soak/resources"
	"github.com/wa-sidecar/wa-sidecar/soak/rig"
	"github.com/wa-sidecar/wa-sidecar/soak/wait"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// hooksTimeout bounds the wait for the webhook queue to empty once every
// message is final: deliveries to a receiver on loopback take milliseconds.
const hooksTimeout = time.Minute

// Webhooks waits until the supervisor's webhook queue is empty, then
// checks that every delivery verified and that each message that went out
// was reported by a message_status event: events are committed with the
// change they report, so none may be lost to a kill.
func Webhooks(ctx context.Context, r *rig.Rig, recv *hooks.Receiver, listed []statusapi.MessageBody) []string {
	var out []string
	for _, bad := range recv.Refused() {
		out = append(out, "webhooks: a delivery was refused: "+bad)
	}
	err := wait.For(ctx, hooksTimeout, "the webhook queue to empty", func() error {
		_, url, _, ok := r.Current()
		if !ok {
			return fmt.Errorf("no supervisor running")
		}
		g, err := resources.Gauges(ctx, url, "wa_sidecar_webhook_queue_depth", "wa_sidecar_webhook_dead_letters")
		if err != nil {
			return err
		}
		if g["wa_sidecar_webhook_dead_letters"] != 0 {
			return wait.Fatal(fmt.Errorf("%v dead letters", g["wa_sidecar_webhook_dead_letters"]))
		}
		if d := g["wa_sidecar_webhook_queue_depth"]; d != 0 {
			return fmt.Errorf("%v events waiting", d)
		}
		return nil
	})
	if err != nil {
		return append(out, fmt.Sprintf("webhooks: %v", err))
	}
	reported := recv.MessageStatuses()
	went := []string{"sent", "delivered", "read"}
	for _, m := range listed {
		if !slices.Contains(went, m.Status) {
			continue
		}
		if !slices.ContainsFunc(reported[m.ID], func(s string) bool { return slices.Contains(went, s) }) {
			out = append(out, fmt.Sprintf("webhooks: %s went out (%s) but no message_status reported it (got %v)", m.ID, m.Status, reported[m.ID]))
		}
	}
	return out
}
