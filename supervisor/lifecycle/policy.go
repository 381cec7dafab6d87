package lifecycle

import (
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/supervisor/badmac"
)

// Policy holds the settings the transitions apply.
type Policy struct {
	BadMAC         badmac.Policy
	LogoutCooldown time.Duration
	// CrashBackoff is [min, max]: the first restart waits min, each further
	// one twice the last.
	CrashBackoff [2]time.Duration
	CrashLimit   int
	// StableConnection is how long a worker must stay connected before its
	// crash count starts over: a worker that dies soon after each connect
	// would otherwise reconnect every second forever, the fast cycle
	// WhatsApp answers with LOGOUT.
	StableConnection time.Duration
	// ArchiveRetry is [min, max] between attempts of a failing archive.
	ArchiveRetry [2]time.Duration
}

// PolicyFrom reads the policy from the configuration.
func PolicyFrom(c config.Config) Policy {
	return Policy{
		BadMAC: badmac.Policy{
			Limit:            c.BadMAC.Limit,
			MinSenders:       c.BadMAC.MinSenders,
			ResetAfter:       c.BadMAC.ResetAfter.Duration,
			RestartDelay:     c.BadMAC.RestartDelay.Duration,
			StormTrips:       c.BadMAC.StormTrips,
			StormWindow:      time.Hour,
			StormMinWait:     c.Logout.Cooldown.Duration,
			StormMaxCooldown: c.BadMAC.StormMaxCooldown.Duration,
		},
		LogoutCooldown:   c.Logout.Cooldown.Duration,
		CrashBackoff:     [2]time.Duration{c.Workers.CrashBackoff[0].Duration, c.Workers.CrashBackoff[1].Duration},
		CrashLimit:       c.Workers.CrashLimit,
		StableConnection: 10 * time.Minute,
		ArchiveRetry:     [2]time.Duration{time.Second, 5 * time.Minute},
	}
}
