package main

import (
	"testing"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

func TestCheckLine(t *testing.T) {
	at := clocktest.Origin()
	stamp := at.UTC().Format("2006-01-02T15:04:05Z07:00")
	for _, c := range []struct {
		r    statusapi.CheckResult
		want string
	}{
		{statusapi.CheckResult{Number: "573001234567", Input: "573001234567", OnWhatsApp: true, JID: "573001234567@s.whatsapp.net", CheckedAt: at},
			"573001234567 on_whatsapp 573001234567@s.whatsapp.net " + stamp},
		{statusapi.CheckResult{Number: "573009999999", Input: "573009999999", CheckedAt: at},
			"573009999999 not_on_whatsapp - " + stamp},
	} {
		if got := checkLine(c.r); got != c.want {
			t.Errorf("checkLine = %q, want %q", got, c.want)
		}
	}
}
