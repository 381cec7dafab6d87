package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// Numbers as people write them reach one recipient: on an organization
// with default_country CO, "+57 300 123 4567" and "(300) 123-4567" both
// arrive at 573001234567, and a broadcast naming one number in two
// spellings sends it once. An organization registered through the API
// reads numbers with the host-wide default_country (none here), so the
// national spelling is refused with a sentence naming it.
func TestNumbersInTheirSpellings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "[[org]]\nid = \"nco\"\ndefault_country = \"CO\"\n")
	phone := "573007915310"
	e.link("nco", phone)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	intl := e.send("nco", "+57 300 123 4567", "written international", "")
	national := e.send("nco", "(300) 123-4567", "written national", "")
	for _, m := range []string{intl.To, national.To} {
		if m != "573001234567" {
			t.Fatalf("a message is stored to %q, want 573001234567", m)
		}
	}
	b, err := e.api.CreateBroadcast(ctx, "nco", []string{"(300) 765-4321", "+57 300 765 4321", "573007654321"}, "one number, three spellings", "")
	if err != nil || b.Total != 1 {
		t.Fatalf("broadcast: %+v %v, want 1 recipient", b, err)
	}
	e.waitMessages("nco", []string{intl.ID, national.ID}, 30*time.Second, "delivered", "read")
	e.eventually(30*time.Second, "the broadcast done", func() error {
		got, err := e.api.Broadcast(ctx, "nco", b.ID)
		if err != nil || got.Status != "done" || got.Sent != 1 {
			return fmt.Errorf("%+v %v", got, err)
		}
		return nil
	})
	to := map[string][]string{}
	for _, d := range e.deliveries(phone, false) {
		to[d.Text] = append(to[d.Text], d.To)
	}
	for text, want := range map[string]string{
		"written international": "573001234567", "written national": "573001234567", "one number, three spellings": "573007654321",
	} {
		if got := to[text]; len(got) != 1 || got[0] != want {
			t.Errorf("the recipient view shows %q sent to %v, want once to %s", text, got, want)
		}
	}

	e.start("napi")
	_, err = e.api.Send(ctx, "napi", "(300) 123-4567", "x", "")
	var apiErr *apiclient.APIError
	want := `to: phone number "(300) 123-4567" is too short for +30 (GR); with no default_country set, a number is read country code first`
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Message != want {
		t.Fatalf("a national spelling on an org without default_country: %v, want 400 %q", err, want)
	}
}
