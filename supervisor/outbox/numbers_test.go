package outbox_test

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

// numbersOutbox has organization "co" reading numbers as Colombian, "us"
// as of the host-wide default_country US, and "2" registered too.
func numbersOutbox(t *testing.T, hostWide string) *outbox.Outbox {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	register(t, st, "co", "us", "2")
	cfg := testMessages()
	cfg.DefaultCountry = hostWide
	o := outbox.New(outbox.Options{Config: cfg, Store: st, Metrics: &metrics{}, Clock: clock.NewFake(clocktest.Origin()),
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Fleet:     outbox.FleetFunc(func(string) (outbox.Worker, bool) { return nil, false }),
		Countries: map[string]string{"co": "CO"}})
	if err := o.Start(bg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Stop(); st.Close() })
	return o
}

// Every spelling of a number is stored as its E.164 digits, read with the
// organization's default_country, else the host-wide one.
func TestSendStoresE164Digits(t *testing.T) {
	o := numbersOutbox(t, "US")
	for _, c := range []struct{ org, to, want string }{
		{"co", "+57 300 123 4567", "573001234567"},
		{"co", "(300) 123-4567", "573001234567"},
		{"co", "573001234567", "573001234567"},
		{"us", "(202) 555-0123", "12025550123"},
		{"us", "+57 300 123 4567", "573001234567"},
	} {
		m, _, err := o.Send(bg, c.org, outbox.SendRequest{To: c.to, Text: "x"})
		if err != nil || m.To != c.want {
			t.Errorf("%s: send to %q stored %q, %v; want %q", c.org, c.to, m.To, err, c.want)
		}
	}
	var ie *outbox.InputError
	_, _, err := o.Send(bg, "us", outbox.SendRequest{To: "(300) 123-4567", Text: "x"})
	if !errors.As(err, &ie) || ie.Error() != `to: phone number "(300) 123-4567" is not a valid number for +1 (US); read country code first, it is not valid either` {
		t.Errorf("a Colombian number written nationally to a US org: %v", err)
	}
	// The same idempotency key with another spelling of the same number is
	// the same message.
	first, _, err := o.Send(bg, "co", outbox.SendRequest{To: "3001234567", Text: "y", IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	again, created, err := o.Send(bg, "co", outbox.SendRequest{To: "+57 300 123 4567", Text: "y", IdempotencyKey: "k"})
	if err != nil || created || again.ID != first.ID {
		t.Errorf("the key again with another spelling: %+v created=%v %v, want message %s", again, created, err, first.ID)
	}
}

// Without a default_country a number without '+' is read country code
// first, and the error says so.
func TestSendWithoutDefaultCountry(t *testing.T) {
	o := numbersOutbox(t, "")
	if m, _, err := o.Send(bg, "2", outbox.SendRequest{To: "+57 300 123 4567", Text: "x"}); err != nil || m.To != "573001234567" {
		t.Errorf("international spelling: %+v %v", m, err)
	}
	_, _, err := o.Send(bg, "2", outbox.SendRequest{To: "(300) 123-4567", Text: "x"})
	var ie *outbox.InputError
	if !errors.As(err, &ie) || ie.Field != "to" || !containsAll(ie.Msg, `"(300) 123-4567"`, "no default_country") {
		t.Errorf("a national spelling with no default_country: %v", err)
	}
}

// Duplicates are removed after parsing: two spellings of one number are one
// recipient, and the recipients hash (broadcast idempotency) is that of the
// digits, whatever the spelling.
func TestBroadcastDedupesSpellings(t *testing.T) {
	o := numbersOutbox(t, "")
	b, _, err := o.CreateBroadcast(bg, "co", outbox.BroadcastRequest{Text: "x", IdempotencyKey: "promo",
		Recipients: []string{"+57 300 123 4567", "573001234567", "(300) 123-4567", "300 765 4321"}})
	if err != nil || b.Total != 2 {
		t.Fatalf("broadcast: %+v %v, want 2 recipients", b, err)
	}
	if want := outbox.RecipientsHash([]string{"573001234567", "573007654321"}); b.RecipientsHash != want {
		t.Errorf("recipients hash %s, want the digits' %s", b.RecipientsHash, want)
	}
	again, created, err := o.CreateBroadcast(bg, "co", outbox.BroadcastRequest{Text: "x", IdempotencyKey: "promo",
		Recipients: []string{"3001234567", "+57 300 765 4321"}})
	if err != nil || created || again.ID != b.ID {
		t.Errorf("the same job in other spellings: %+v created=%v %v, want %s", again, created, err, b.ID)
	}
	_, _, err = o.CreateBroadcast(bg, "co", outbox.BroadcastRequest{Text: "x", Recipients: []string{"3001234567", "12", "+999 1"}})
	var ie *outbox.InputError
	want := `recipients: phone number "12" is too short for +57 (CO); read country code first, it is not valid either; phone number "+999 1" has no valid country code`
	if !errors.As(err, &ie) || ie.Error() != want {
		t.Errorf("bad recipients: %v\nwant %s", err, want)
	}
}
