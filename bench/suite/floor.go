package suite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/wa-sidecar/wa-sidecar/bench/measure"
	"github.com/wa-sidecar/wa-sidecar/bench/rig"
)

// floor runs k wa-bare processes side by side, each one whatsmeow session
// and nothing else, and reads their memory once they have been idle for
// Settle: the least that k organizations can cost in a design that gives
// each its own process. It returns the sum over the k processes.
func (r *run) floor(ctx context.Context, dir string, k int) (sum measure.Memory, err error) {
	r.say("floor: linking %d bare processes", k)
	procs := make([]*rig.OneProc, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for j := range procs {
		// Apart from the supervisor's (orgPhone) and wa-oneproc's phones.
		phone := fmt.Sprintf("57303%02d%05d", k, j+1)
		wg.Go(func() {
			procs[j], errs[j] = rig.StartBare(ctx, r.cfg.Bin, filepath.Join(dir, strconv.Itoa(j)), r.emu, phone)
		})
	}
	wg.Wait()
	defer func() {
		for _, p := range procs {
			if p != nil {
				err = errors.Join(err, p.Stop())
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return sum, err
	}
	if err := sleep(ctx, r.cfg.Settle); err != nil {
		return sum, err
	}
	for _, p := range procs {
		m, err := measure.ReadMemory(p.PID())
		if err != nil {
			return sum, err
		}
		sum = sum.Add(m)
	}
	return sum, nil
}
