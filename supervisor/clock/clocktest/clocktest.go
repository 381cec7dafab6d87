// Package clocktest gives tests the origin of their fake clocks.
//
// A fake clock pinned to a fixed date breaks the day the wall clock passes
// it, if anything in the test (a seeded row, a store's own timestamp) comes
// from the wall clock. So every fake clock starts from the real time, and
// `make unit-shifted` runs the unit tests again with the origin moved a year
// ahead (WA_SIDECAR_TEST_CLOCK_SHIFT=8760h): a test that mixes the wall
// clock with a fake one fails there, on any date.
package clocktest

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// ShiftEnv names the variable that moves Origin by a Go duration.
const ShiftEnv = "WA_SIDECAR_TEST_CLOCK_SHIFT"

// Origin is the start of every fake clock in a test binary: the wall clock
// when first asked, to the millisecond (what state.db keeps), moved by
// ShiftEnv. It is the same value for the whole process, so data seeded
// before a harness's clock exists agrees with it.
var Origin = sync.OnceValue(func() time.Time {
	at := time.UnixMilli(time.Now().UnixMilli()).UTC()
	s := os.Getenv(ShiftEnv)
	if s == "" {
		return at
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(fmt.Sprintf("%s=%q: %v", ShiftEnv, s, err))
	}
	return at.Add(d)
})
