package lifecycle

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnknownOrg refuses an action on an organization that is not registered
// (or was deleted).
var ErrUnknownOrg = errors.New("unknown organization")

// HoldError refuses a start or relink while a hold (cooldown, ban, storm)
// lasts. The API answers it with 409 and Retry-After.
type HoldError struct {
	Org   string
	Until time.Time
	// Why is a phrase such as "a logout" or "a temporary ban".
	Why string
}

func (e *HoldError) Error() string {
	return fmt.Sprintf("organization %s is held back after %s until %s", e.Org, e.Why, e.Until.UTC().Format(time.RFC3339))
}

// ConflictError refuses an action that the organization's state does not
// allow, such as a logout with no linked session running.
type ConflictError struct {
	Org string
	Msg string
}

func (e *ConflictError) Error() string { return fmt.Sprintf("organization %s: %s", e.Org, e.Msg) }
