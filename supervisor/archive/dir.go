package archive

import "time"

// Dir is the auth root (state_dir/auth_sessions) bound to the package's
// functions, for callers that hold it as one value.
type Dir string

// Move archives org's auth directory; see Move.
func (d Dir) Move(org, reason string, now time.Time) (string, error) {
	return Move(string(d), org, reason, now)
}

// Prune keeps org's newest keep archives; see Prune.
func (d Dir) Prune(org string, keep int) ([]string, error) { return Prune(string(d), org, keep) }
