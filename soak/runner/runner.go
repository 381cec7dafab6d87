// Package runner is the soak from start to end: it sets up the rig, links
// the organizations, runs the schedule with the send stream and the
// resource sampler alongside, ends with the held organizations across a
// final SIGKILL restart, runs every check, and stops everything it
// started, whatever failed.
package runner

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/soak/check"
	"github.com/wa-sidecar/wa-sidecar/soak/driver"
	"github.com/wa-sidecar/wa-sidecar/soak/hooks"
	"github.com/wa-sidecar/wa-sidecar/soak/report"
	"github.com/wa-sidecar/wa-sidecar/soak/resources"
	"github.com/wa-sidecar/wa-sidecar/soak/rig"
	"github.com/wa-sidecar/wa-sidecar/soak/schedule"
)

// Options configure a run.
type Options struct {
	// Duration bounds the run: the schedule ends early enough for the
	// final restart and the checks to fit in it.
	Duration time.Duration
	Seed     uint64
	BinDir   string
	Orgs     int
	// Keep keeps the temporary directory (state, config, supervisor
	// logs) although the run passed; a failed run always keeps it.
	Keep bool
	// Progress receives a line now and then.
	Progress io.Writer
}

// MinDuration gives the last supervisor lifetime enough quiet pauses in
// its middle and last thirds for the growth rule.
const MinDuration = 3 * time.Minute

const (
	sampleEvery   = 2 * time.Second
	sendEvery     = 400 * time.Millisecond
	progressEvery = 30 * time.Second
)

// reserve is the time kept at the end for the final restart, the relinks
// of the held organizations, the drain and the checks.
func reserve(d time.Duration) time.Duration { return max(45*time.Second, d/10) }

// Result is what a run measured and found.
type Result struct {
	Figures report.Figures
	// Findings are the failed assertions, one sentence each.
	Findings []string
	// Dir is the temporary directory when it was kept.
	Dir string
}

// Run runs the soak.
func Run(ctx context.Context, o Options) (res Result) {
	began := time.Now()
	res.Figures = report.Figures{Seed: o.Seed, Orgs: o.Orgs}
	defer func() { res.Figures.Duration = time.Since(began) }()
	recv, err := hooks.Start()
	if err != nil {
		res.Findings = append(res.Findings, err.Error())
		return res
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := recv.Close(sctx); err != nil {
			res.Findings = append(res.Findings, err.Error())
		}
	}()
	r, err := rig.New(rig.Options{BinDir: o.BinDir, HookURL: recv.URL, HookSecret: recv.Secret})
	if err != nil {
		res.Findings = append(res.Findings, err.Error())
		return res
	}
	defer func() {
		keep := o.Keep || len(res.Findings) > 0
		if err := r.Close(context.Background(), keep); err != nil {
			res.Findings = append(res.Findings, err.Error())
		}
		if keep {
			res.Dir = r.Dir
		}
	}()
	s := &soak{o: o, began: began, rig: r, recv: recv, res: &res}
	s.run(ctx)
	return res
}

// soak is one run's moving parts.
type soak struct {
	o       Options
	began   time.Time
	rig     *rig.Rig
	recv    *hooks.Receiver
	drv     *driver.Driver
	sampler resources.Sampler
	res     *Result
}

func (s *soak) fail(findings ...string) { s.res.Findings = append(s.res.Findings, findings...) }

func (s *soak) progress(format string, args ...any) {
	fmt.Fprintf(s.o.Progress, "wa-soak %6s  %s\n", time.Since(s.began).Round(time.Second), fmt.Sprintf(format, args...))
}

func (s *soak) run(ctx context.Context) {
	// A supervisor that exits by itself ends the run with that as the cause.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-s.rig.Died():
			cancel(err)
		case <-ctx.Done():
		}
	}()
	if err := s.rig.StartSupervisor(ctx); err != nil {
		s.fail(err.Error())
		return
	}
	s.drv = driver.New(s.rig, driver.Orgs(s.o.Orgs))
	defer s.figures()
	if err := s.drv.LinkAll(ctx); err != nil {
		s.fail("link: " + err.Error())
		return
	}
	s.progress("%d organizations linked", s.o.Orgs)

	var bg sync.WaitGroup
	sampling, stopSampling := context.WithCancel(ctx)
	bg.Go(func() { s.sampler.Run(sampling, sampleEvery, s.target) })
	bg.Go(func() { s.report(sampling) })
	defer func() { stopSampling(); bg.Wait() }()

	sender := s.drv.NewSender(s.o.Seed)
	stopSend := make(chan struct{})
	stopSending := sync.OnceFunc(func() { close(stopSend) })
	var snd sync.WaitGroup
	snd.Go(func() {
		if err := sender.Run(ctx, stopSend, sendEvery); err != nil {
			cancel(fmt.Errorf("send stream: %w", err))
		}
	})
	defer func() { stopSending(); snd.Wait() }()

	end := s.began.Add(s.o.Duration - reserve(s.o.Duration))
	length := time.Until(end)
	plan := schedule.New(s.o.Seed, length, s.o.Orgs)
	s.progress("schedule: %d events over %s", len(plan.Events), length.Round(time.Second))
	if err := s.drv.Run(ctx, time.Now(), end, plan.Events); err != nil {
		s.fail("schedule: " + err.Error())
		return
	}
	s.progress("schedule done (%d events skipped, late); final SIGKILL restart with %s logged out and %s tripped",
		s.drv.Late(), s.drv.Orgs()[plan.FinalLogout].ID, s.drv.Orgs()[plan.FinalBadMAC].ID)
	final, err := s.drv.Finale(ctx, plan, sender)
	if err != nil {
		s.fail("finale: " + err.Error())
		return
	}
	s.fail(check.State(ctx, s.rig, final, s.drv.Journal())...)
	if err := s.drv.Release(ctx, final); err != nil {
		s.fail("relink after the final restart: " + err.Error())
		return
	}
	stopSending()
	snd.Wait()
	s.progress("checking")
	fig, listed, findings := check.Messages(ctx, s.rig, s.drv.Orgs(), s.drv.Journal())
	s.res.Figures.Messages = fig
	s.fail(findings...)
	s.fail(check.Webhooks(ctx, s.rig, s.recv, listed)...)
	n, findings := check.Archives(s.rig.StateDir, s.drv.Orgs(), s.drv.Journal())
	s.res.Figures.Archives = n
	s.fail(findings...)
	s.fail(check.Emulator(s.rig)...)
}

// target is the supervisor to sample, and whether the run is at rest.
func (s *soak) target() (resources.Target, bool) {
	pid, url, lifetime, ok := s.rig.Current()
	return resources.Target{PID: pid, MetricsURL: url, Lifetime: lifetime, Quiet: s.drv.Quiet()}, ok
}

// report prints a progress line now and then.
func (s *soak) report(ctx context.Context) {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ev := 0
		for _, n := range s.drv.Journal().Events() {
			ev += n
		}
		s.progress("%d events, %d messages accepted", ev, len(s.drv.Journal().Messages()))
	}
}

// figures fills in what the run measured, whatever phase it ended in.
func (s *soak) figures() {
	f := &s.res.Figures
	j := s.drv.Journal()
	f.Events = j.Events()
	if f.Messages.Accepted == 0 {
		f.Messages.Accepted = len(j.Messages())
	}
	f.SendRetries, f.KeyRepeats = j.SendRetries()
	f.Webhooks, f.WebhookEvents = s.recv.Counts()
	f.WorkerProcesses = s.rig.WorkerPIDs()
	samples, skipped := s.sampler.Samples()
	f.Lifetimes, f.SkippedSamples = resources.Lifetimes(samples), skipped
	f.Growth = resources.Judge(samples)
	s.fail(f.Growth.Findings...)
	s.fail(j.Findings()...)
}
