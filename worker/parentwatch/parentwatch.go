// Package parentwatch makes a worker exit when its supervisor is gone. A
// worker idle while its supervisor is SIGKILLed stays alive with PPID 1
// (go-plugin#10, #114, #210) and would keep its WhatsApp session connected
// next to the one a restarted supervisor starts: two connections with the
// same keys replace each other. Pdeathsig on the supervisor side covers most
// cases; this is the worker's own guarantee.
//
// It polls getppid once a second rather than waiting on a pidfd: polling
// needs no Linux-only syscalls or a thread parked in poll(2), and a second
// of delay is harmless next to the minutes WhatsApp takes to react.
package parentwatch

import (
	"context"
	"time"
)

// Orphaned reports whether the process has lost the parent it started with:
// when the parent dies the kernel reparents to init or a subreaper, so any
// change of PPID means the supervisor is gone, whatever the new PPID is.
func Orphaned(initial, current int) bool {
	return current != initial
}

// Watch calls onOrphan once and returns when ppid stops returning initial,
// checked on every tick. It returns without calling onOrphan when ctx ends.
func Watch(ctx context.Context, initial int, ppid func() int, tick <-chan time.Time, onOrphan func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if Orphaned(initial, ppid()) {
				onOrphan()
				return
			}
		}
	}
}
