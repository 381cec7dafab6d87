package fleet

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnknownOrg is returned for an organization the registry does not hold.
var ErrUnknownOrg = errors.New("unknown organization")

// CooldownError refuses a start or relink until Until.
type CooldownError struct {
	Org    string
	Until  time.Time
	Reason string
}

func (e *CooldownError) Error() string {
	return fmt.Sprintf("organization %s is in cooldown after %s until %s", e.Org, e.Reason, e.Until.UTC().Format(time.RFC3339))
}

// ConflictError refuses an action that the organization's state does not
// allow, such as a phone pairing code for an organization that is already linked.
type ConflictError struct {
	Org string
	Msg string
}

func (e *ConflictError) Error() string { return fmt.Sprintf("organization %s: %s", e.Org, e.Msg) }
