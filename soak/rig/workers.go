package rig

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/soak/wait"
)

// callTimeout bounds one status API call; the API answers in milliseconds.
const callTimeout = 10 * time.Second

// workersGone is how long a stopped supervisor's workers may outlive it:
// they die by Pdeathsig at once, or by their own parent watch within a
// second.
const workersGone = 10 * time.Second

// Status reads one organization's status object and remembers its worker's
// PID, so that the end of each lifetime can check that none outlived it.
func (r *Rig) Status(ctx context.Context, org string) (state.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	s, err := r.API.Status(ctx, org)
	if err != nil {
		return s, fmt.Errorf("status of %s: %w", org, err)
	}
	r.seen(s)
	return s, nil
}

// List reads every organization's status object, remembering worker PIDs.
func (r *Rig) List(ctx context.Context) ([]state.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	all, err := r.API.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list organizations: %w", err)
	}
	for _, s := range all {
		r.seen(s)
	}
	return all, nil
}

// worker is a worker process as first seen: its start time tells it from
// a later process that reuses the PID, which the soak must never signal.
type worker struct {
	lifetime int
	started  string
}

func (r *Rig) seen(s state.Snapshot) {
	if s.WorkerPID == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pids[s.WorkerPID]; ok || r.sup == nil {
		return
	}
	// A worker that exited before this read has no start time and counts
	// as gone from now on.
	started, _ := startTime(s.WorkerPID)
	r.pids[s.WorkerPID] = worker{lifetime: r.sup.lifetime, started: started}
}

// liveWorkers lists the PIDs seen in one lifetime (every lifetime: -1)
// that still run.
func (r *Rig) liveWorkers(lifetime int) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for pid, w := range r.pids {
		if (lifetime < 0 || w.lifetime == lifetime) && w.started != "" && alive(pid, w.started) {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// waitWorkersGone requires every worker of a stopped lifetime to be gone:
// one left running would share its auth store with the next supervisor's.
func (r *Rig) waitWorkersGone(ctx context.Context, lifetime int) error {
	return wait.For(ctx, workersGone, fmt.Sprintf("the workers of supervisor lifetime %d to exit with it", lifetime), func() error {
		if left := r.liveWorkers(lifetime); len(left) > 0 {
			return fmt.Errorf("worker pids %v still run", left)
		}
		return nil
	})
}

// killWorkers ends workers a supervisor left behind; they descend from
// the soak, so cleaning them up is its job.
func (r *Rig) killWorkers(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// WorkerPIDs is how many distinct worker processes the run saw.
func (r *Rig) WorkerPIDs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pids)
}

// alive reports whether the process pid that started at started still
// runs and is not a zombie waiting for its reaper.
func alive(pid int, started string) bool {
	fields, err := stat(pid)
	if err != nil || len(fields) < 20 || fields[19] != started {
		return false
	}
	return fields[0] != "Z" && fields[0] != "X"
}

// startTime is the process's start time in clock ticks since boot.
func startTime(pid int) (string, error) {
	fields, err := stat(pid)
	if err != nil {
		return "", err
	}
	if len(fields) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return fields[19], nil
}

// stat is /proc/<pid>/stat after the command name (which may hold
// spaces): field 0 is the state, field 19 the start time.
func stat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])), nil
}

// KillWorker sends SIGKILL to a worker the status API named, after
// checking that the PID still is a wa-worker: the soak signals nothing else.
func (r *Rig) KillWorker(pid int) error {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return fmt.Errorf("worker pid %d: %w", pid, err)
	}
	if want := filepath.Join(r.binDir, "wa-worker"); exe != want {
		return fmt.Errorf("pid %d runs %s, not %s", pid, exe, want)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 worker %d: %w", pid, err)
	}
	return nil
}
