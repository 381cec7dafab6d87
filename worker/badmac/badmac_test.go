package badmac

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	signallog "go.mau.fi/libsignal/logger"
	"go.mau.fi/libsignal/signalerror"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
)

// The exact lines libsignal v0.2.1 logs for a corrupted MAC: DecryptWithState
// (:316) once per state tried, and DecryptWithRecord (:260) once.
const (
	line316 = "Unable to verify ciphertext mac: mismatching MAC in signal message"
	line260 = "failed to verify ciphertext MAC: mismatching MAC in signal message"
)

const sender = "573001112222@s.whatsapp.net"

type harness struct {
	d      *Detector
	signal *signalLogger
	wa     waLog.Logger
	out    *bytes.Buffer
}

func newHarness() *harness {
	out := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := New()
	return &harness{
		d:      d,
		signal: &signalLogger{d: d, log: log},
		wa:     d.WhatsmeowLogger(log),
		out:    out,
	}
}

// corrupted replays what whatsmeow and libsignal log for one message whose
// MAC fails on the current state and on `older` previous states.
func (h *harness) corrupted(id string, older int) Verdict {
	h.wa.Debugf("Decrypting message from %s", sender)
	h.signal.Error("SessionCipher.go:316", line316)
	h.signal.Warning("SessionCipher.go:260", line260)
	for range older {
		h.signal.Error("SessionCipher.go:316", line316)
	}
	h.wa.Warnf("Error decrypting message %s from %s: %v", id, sender,
		fmt.Errorf("failed to decrypt normal message: %w", signalerror.ErrNoValidSessions))
	return h.d.Classify(undecryptable(id, false))
}

func undecryptable(id string, unavailable bool) *events.UndecryptableMessage {
	return &events.UndecryptableMessage{
		Info:          types.MessageInfo{ID: id},
		IsUnavailable: unavailable,
	}
}

func TestCorruptedMessageCountsOnceWhateverTheStates(t *testing.T) {
	h := newHarness()
	for i, older := range []int{0, 1, 5, 39} {
		id := fmt.Sprintf("MSG%d", i)
		if v := h.corrupted(id, older); v.Kind != BadMAC {
			t.Fatalf("%s with %d older states: got %v, want bad_mac", id, older, v)
		}
	}
	// The mark was consumed: a following plain failure is not a Bad MAC.
	h.wa.Debugf("Decrypting message from %s", sender)
	h.wa.Warnf("Error decrypting message %s from %s: %v", "NEXT", sender,
		fmt.Errorf("failed to decrypt normal message: %w", signalerror.ErrNoSessionForUser))
	if v := h.d.Classify(undecryptable("NEXT", false)); v != (Verdict{Kind: DecryptFailure, Reason: ReasonNoSession}) {
		t.Fatalf("got %v after consumed mark, want no_session", v)
	}
}

func TestFiveCorruptedMessagesAreFiveBadMACs(t *testing.T) {
	h := newHarness()
	n := 0
	for i := range 5 {
		if h.corrupted(fmt.Sprintf("M%d", i), 2).Kind == BadMAC {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("got %d bad MACs, want 5", n)
	}
}

func TestStoreBusyIsNeverBadMAC(t *testing.T) {
	h := newHarness()
	h.wa.Debugf("Decrypting message from %s", sender)
	// An old state's MAC fails, then saving the session hits a locked store.
	h.signal.Error("SessionCipher.go:316", line316)
	h.signal.Warning("SessionCipher.go:260", line260)
	h.wa.Warnf("Error decrypting message %s from %s: %v", "BUSY", sender,
		errors.New("failed to decrypt prekey message: failed to save identity of 573001112222.0: database is locked (5) (SQLITE_BUSY)"))
	if v := h.d.Classify(undecryptable("BUSY", false)); v != (Verdict{Kind: DecryptFailure, Reason: ReasonStoreBusy}) {
		t.Fatalf("got %v, want store_busy", v)
	}
}

func TestMACOnOldStateThenSuccessDoesNotLeak(t *testing.T) {
	h := newHarness()
	// Message 1: current state fails the MAC, a previous state decrypts it.
	h.wa.Debugf("Decrypting message from %s", sender)
	h.signal.Error("SessionCipher.go:316", line316)
	h.signal.Warning("SessionCipher.go:260", line260)
	// Message 2 fails for another reason.
	h.wa.Debugf("Decrypting message from %s", sender)
	h.wa.Warnf("Error decrypting message %s from %s: %v", "M2", sender,
		fmt.Errorf("failed to decrypt normal message: %w", signalerror.ErrNoValidSessions))
	if v := h.d.Classify(undecryptable("M2", false)); v != (Verdict{Kind: DecryptFailure, Reason: ReasonNoValidSession}) {
		t.Fatalf("got %v, want no_valid_session", v)
	}
}

func TestOtherReasons(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("failed to decrypt group message: %w", signalerror.ErrNoSenderKeyForUser), ReasonNoSenderKey},
		{fmt.Errorf("failed to decrypt prekey message: %w", signalerror.ErrUntrustedIdentity), ReasonUntrustedIdentity},
		{errors.New("failed to parse normal message: bad proto"), ReasonOther},
		// Only the text survived (an error wrapped with %v somewhere).
		{errors.New("failed to decrypt normal message: no session found for user"), ReasonNoSession},
	}
	for _, c := range cases {
		h := newHarness()
		h.wa.Debugf("Decrypting message from %s", sender)
		h.wa.Warnf("Error decrypting message %s from %s: %v", "X", sender, c.err)
		if v := h.d.Classify(undecryptable("X", false)); v != (Verdict{Kind: DecryptFailure, Reason: c.want}) {
			t.Errorf("%v: got %v, want %s", c.err, v, c.want)
		}
	}
}

func TestUnavailableIgnoresPendingMark(t *testing.T) {
	h := newHarness()
	h.signal.Error("SessionCipher.go:316", line316)
	if v := h.d.Classify(undecryptable("U", true)); v != (Verdict{Kind: DecryptFailure, Reason: ReasonUnavailable}) {
		t.Fatalf("got %v, want unavailable", v)
	}
}

func TestFallbackWithoutWhatsmeowLine(t *testing.T) {
	h := newHarness()
	h.signal.Error("SessionCipher.go:316", line316)
	if v := h.d.Classify(undecryptable("A", false)); v.Kind != BadMAC {
		t.Fatalf("got %v, want bad_mac from the mark alone", v)
	}
	if v := h.d.Classify(undecryptable("B", false)); v != (Verdict{Kind: DecryptFailure, Reason: ReasonUnknown}) {
		t.Fatalf("got %v, want unknown once the mark is consumed", v)
	}
}

func TestLogsGoToSlog(t *testing.T) {
	h := newHarness()
	h.signal.Debug("SessionCipher.go:1", "Decrypting ciphertext with record: SECRET")
	h.signal.Error("SessionCipher.go:316", line316)
	h.wa.Sub("Socket").Infof("hello %d", 42)
	out := h.out.String()
	if strings.Contains(out, "SECRET") {
		t.Error("libsignal debug line (session record) reached the log")
	}
	for _, want := range []string{line316, `"caller":"SessionCipher.go:316"`, "hello 42", `"module":"Socket"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestSubLoggerJoinsModules: whatsmeow nests sub-loggers (Client, then
// Recv); the line must carry one "module" key naming the path, not the key
// twice, which JSON consumers resolve inconsistently.
func TestSubLoggerJoinsModules(t *testing.T) {
	h := newHarness()
	h.wa.Sub("Client").Sub("Recv").Infof("nested")
	h.wa.Sub("Store").Infof("flat")
	lines := strings.Split(strings.TrimSpace(h.out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(lines), h.out)
	}
	for i, want := range []string{"Client/Recv", "Store"} {
		values := topLevelValues(t, lines[i], "module")
		if len(values) != 1 || values[0] != want {
			t.Errorf("line %q: module values = %q, want exactly [%q]", lines[i], values, want)
		}
	}
}

// topLevelValues returns every value of key in the top-level JSON object
// line, duplicates included (json.Unmarshal would keep only the last).
func topLevelValues(t *testing.T, line, key string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("line %q does not open an object: %v %v", line, tok, err)
	}
	var values []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if tok == key {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				t.Fatalf("line %q: %s is not a string: %s", line, key, v)
			}
			values = append(values, s)
		}
	}
	return values
}

// TestInstalledLoggerKeepsStdoutClean goes through libsignal's own package
// functions, the path SessionCipher uses.
func TestInstalledLoggerKeepsStdoutClean(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()

	d := New()
	d.InstallSignalLogger(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	signallog.Error("Unable to verify ciphertext mac: ", signalerror.ErrBadMAC)
	signallog.Warning(fmt.Errorf("failed to verify ciphertext MAC: %w", signalerror.ErrBadMAC))
	w.Close()
	os.Stdout = stdout
	printed, _ := io.ReadAll(r)
	if len(printed) != 0 {
		t.Fatalf("libsignal wrote to stdout: %q", printed)
	}
	if v := d.Classify(undecryptable("Z", false)); v.Kind != BadMAC {
		t.Fatalf("got %v, want bad_mac", v)
	}
}

// TestWhatsmeowStillLogsTheseFormats fails when a whatsmeow upgrade rewords
// the lines the Detector listens to.
func TestWhatsmeowStillLogsTheseFormats(t *testing.T) {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.mau.fi/whatsmeow").Output()
	if err != nil {
		t.Skipf("cannot locate whatsmeow source: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "message.go"))
	if err != nil {
		t.Skipf("cannot read whatsmeow source: %v", err)
	}
	for _, f := range []string{formatDecryptStart, formatDecryptError} {
		if !bytes.Contains(src, []byte(`"`+f+`"`)) {
			t.Errorf("whatsmeow message.go no longer logs %q", f)
		}
	}
}
