package rig

import (
	"fmt"
	"time"
)

// The timings the soak holds the supervisor to, short like the end-to-end
// suite's so that ten minutes hold hundreds of disruptions. The driver
// needs some of them to know what to expect.
const (
	// BadMACLimit is badmac.limit: a storm of this many corrupted messages
	// trips the policy.
	BadMACLimit = 5
	// LogoutCooldown is logout.cooldown, also the floor of a storm wait:
	// long enough that a hold set just before a supervisor restart is
	// still in force when the restarted supervisor answers.
	LogoutCooldown = 6 * time.Second
	// StormMaxCooldown is badmac.storm_max_cooldown.
	StormMaxCooldown = 12 * time.Second
)

// timings is the config below the paths. Two keys differ from the
// end-to-end suite's on purpose:
//   - crash_limit: an organization's crash count starts over only after 10
//     minutes connected, and the soak kills each worker more often than
//     that, so the default would give organizations up mid-run (e2e covers
//     the limit itself);
//   - keep_archives: every archive the run makes must still be there at
//     the end, so none may be pruned.
const timings = `
[workers]
max_live = 5
start_gap = "300ms"
start_jitter = ["0s", "50ms"]
health_interval = "1s"
crash_backoff = ["300ms", "2s"]
crash_limit = 1000
stop_timeout = "3s"

[badmac]
limit = %d
reset_after = "3s"
keep_archives = 100000
restart_delay = "300ms"
storm_trips = 3
storm_max_cooldown = %q

[logout]
cooldown = %q

[messages]
min_interval = "200ms"
per_minute = 600
jitter = ["0s", "0s"]
expire_after = "1h"
max_jobs = 2
stalled_after = "5s"
restrict_backoff = "3s"
`

// config renders the supervisor's config.toml. The API listens on a unix
// socket, whose path survives restarts; metrics on a port the kernel picks.
func config(stateDir, worker, apiSocket, emulatorURL, hookURL, hookSecretFile string) string {
	return fmt.Sprintf(`state_dir = %q
worker_binary = %q
log_level = "info"
[api]
listen = %q
[metrics]
listen = "127.0.0.1:0"
[whatsapp.emulator]
url = %q
[webhook]
url = %q
secret_file = %q
`, stateDir, worker, "unix:"+apiSocket, emulatorURL, hookURL, hookSecretFile) +
		fmt.Sprintf(timings, BadMACLimit, StormMaxCooldown.String(), LogoutCooldown.String())
}
