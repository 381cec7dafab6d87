package lifecycle

import "time"

// Input is one thing that happens to an organization: an operator's call, a
// worker's event, or the outcome of an effect the fleet carried out.
type Input interface{ input() }

// Operator and supervisor inputs.
type (
	// Restore starts the organization's life in this supervisor process
	// from its loaded Record. Fingerprint is set for a record that lacks one.
	// Proxy, when set, is the config's proxy for an organization of the
	// config, which wins at each boot.
	Restore struct {
		Fingerprint string
		Proxy       *string
	}
	// Start registers (or revives a tombstone) and starts or links. Force
	// closes a live worker so that a new one starts, and skips a crash
	// backoff; it never shortens a hold.
	Start struct {
		Force       bool
		Fingerprint string // for a new registration
		FromConfig  bool
		// Proxy, when set, replaces the stored proxy; it applies from the
		// next start and never restarts a worker by itself.
		Proxy *string
	}
	Stop   struct{}
	Clear  struct{}
	Delete struct{}
	// Logout asks the live worker to unlink the device on WhatsApp's side.
	Logout struct{}
	// Shutdown closes the worker without changing what should run, so the
	// next supervisor start brings the same organizations back.
	Shutdown struct{}
	// Tick arrives at WakeAt.
	Tick struct{}
)

// Outcomes of effects.
type (
	// SlotGranted: the start queue admitted ticket N.
	SlotGranted struct {
		N      uint64
		Egress string
	}
	// EgressResolved answers ResolveEgress for request N: its egress key,
	// or Err when the proxy's host did not resolve (Temporary: a timeout
	// or a server failure, worth another try; otherwise the name does not
	// exist and only an operator can fix the proxy).
	EgressResolved struct {
		N         uint64
		Egress    string
		Err       string
		Temporary bool
	}
	Launched struct {
		Gen       int
		PID       int
		Restoring bool // the store held a linked device
		// DeviceMissing: the launch was a restore and the store held no
		// device; the worker did not connect and waits to be stopped.
		DeviceMissing bool
		// Sandbox is the worker's sentence of what confines it.
		Sandbox string
	}
	// LaunchFailed: no process of that launch is left (it never forked or
	// has been reaped). Cancelled: it was stopped on purpose.
	LaunchFailed struct {
		Gen       int
		Err       string
		Cancelled bool
		// BinaryChanged: the worker binary is not the one checked at boot;
		// nothing starts until the supervisor restarts.
		BinaryChanged bool
	}
	// Reaped: the process of Gen has exited and been waited for.
	Reaped struct{ Gen int }
	// StreamEnded: the worker's event stream ended, which is a crash unless
	// the worker is closing anyway.
	StreamEnded struct {
		Gen int
		Err string
	}
	// Unhealthy: the worker did not answer the health check.
	Unhealthy struct {
		Gen int
		Err string
	}
	// LogoutDone: the worker's remote logout finished; Err "" is success.
	LogoutDone struct {
		Gen int
		Err string
	}
	Archived struct {
		Reason string
		Path   string // "" when there was nothing to archive
	}
	ArchiveFailed struct {
		Reason string
		Err    string
	}
	PairingCode struct {
		Gen  int
		Code string
	}
)

// Worker events, each tagged with the launch that produced it.
type (
	QRShown struct {
		Gen       int
		Code      string
		PNG       string
		ExpiresAt time.Time
	}
	Paired struct {
		Gen int
		JID string
	}
	Connected struct {
		Gen int
		JID string
	}
	Disconnected struct{ Gen int }
	LoggedOut    struct {
		Gen    int
		Reason string
	}
	Replaced struct{ Gen int }
	// Banned: a temporary ban; a zero Until means WhatsApp gave no expiry.
	Banned struct {
		Gen   int
		Code  string
		Until time.Time
	}
	ConnectFailed struct {
		Gen             int
		Reason, Message string
	}
	BadMAC struct {
		Gen               int
		MessageID, Sender string
	}
	DecryptFailed struct {
		Gen    int
		Reason string
	}
	QRGaveUp        struct{ Gen int }
	MessageReceived struct{ Gen int }
)

func (Restore) input()         {}
func (Start) input()           {}
func (Stop) input()            {}
func (Clear) input()           {}
func (Delete) input()          {}
func (Logout) input()          {}
func (Shutdown) input()        {}
func (Tick) input()            {}
func (SlotGranted) input()     {}
func (EgressResolved) input()  {}
func (Launched) input()        {}
func (LaunchFailed) input()    {}
func (Reaped) input()          {}
func (StreamEnded) input()     {}
func (Unhealthy) input()       {}
func (LogoutDone) input()      {}
func (Archived) input()        {}
func (ArchiveFailed) input()   {}
func (PairingCode) input()     {}
func (QRShown) input()         {}
func (Paired) input()          {}
func (Connected) input()       {}
func (Disconnected) input()    {}
func (LoggedOut) input()       {}
func (Replaced) input()        {}
func (Banned) input()          {}
func (ConnectFailed) input()   {}
func (BadMAC) input()          {}
func (DecryptFailed) input()   {}
func (QRGaveUp) input()        {}
func (MessageReceived) input() {}
