package session

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/worker/badmac"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
	"github.com/wa-sidecar/wa-sidecar/worker/emulatorlink"
)

// TestCheckNumbersAgainstEmulator asks the emulator's usync about more
// numbers than one batch holds, two of them marked off WhatsApp.
func TestCheckNumbersAgainstEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	_, base := startEmulator(t)
	ctl := control{t: t, base: base, hc: emulatorlink.HTTPClient(strings.TrimPrefix(base, "http://"))}
	det := badmac.New()
	det.InstallSignalLogger(testLog(t))
	sess := New(Options{Log: testLog(t), Detector: det})
	ctx := context.Background()

	if _, err := sess.CheckNumbers(ctx, []string{"573001234567"}); err == nil {
		t.Fatal("CheckNumbers before Start answered; it must say it has no answer")
	}
	if _, err := sess.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "check", AuthDir: filepath.Join(t.TempDir(), "check"), EmulatorUrl: base}); err != nil {
		t.Fatal(err)
	}
	defer sess.Stop(ctx)
	rec := &recorder{}
	go func() { _ = sess.Events(ctx, rec.sink) }()
	pair(t, rec, ctl)

	emu := emuctl.New(base)
	off := map[string]bool{"573009000001": true, "573009000055": true}
	for p := range off {
		if err := emu.SetOnWhatsApp(ctx, p, false); err != nil {
			t.Fatal(err)
		}
	}
	var phones []string
	for i := range checkBatch + 10 {
		phones = append(phones, fmt.Sprintf("5730090000%02d", i))
	}
	got, err := sess.CheckNumbers(ctx, phones)
	if err != nil {
		t.Fatalf("CheckNumbers: %v", err)
	}
	if len(got) != len(phones) {
		t.Fatalf("%d answers for %d numbers", len(got), len(phones))
	}
	for i, c := range got {
		if c.Phone != phones[i] || c.OnWhatsapp == off[c.Phone] {
			t.Errorf("answer %d = %v, want %s on_whatsapp=%v", i, c, phones[i], !off[phones[i]])
		}
		if c.OnWhatsapp && c.Jid != c.Phone+"@s.whatsapp.net" || !c.OnWhatsapp && c.Jid != "" {
			t.Errorf("answer %d jid %q", i, c.Jid)
		}
	}
	if _, err := sess.CheckNumbers(ctx, []string{"+573001234567"}); err == nil {
		t.Error("a malformed number was sent to the server")
	}
}
