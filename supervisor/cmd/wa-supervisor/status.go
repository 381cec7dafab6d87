package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// status prints every organization, or the one in args, as a table for
// people, or with asJSON as the status objects the API returns, which
// scripts parse. The cluster's nodes that did not answer are named on
// errOut: their organizations are missing, not gone.
func status(ctx context.Context, c *apiclient.Client, args []string, asJSON bool, out, errOut io.Writer) error {
	var snaps []state.Snapshot
	if len(args) == 0 {
		list, unreachable, err := c.ListCluster(ctx)
		if err != nil {
			return err
		}
		if len(unreachable) > 0 {
			fmt.Fprintf(errOut, "wa-supervisor status: node(s) %s did not answer: their organizations are not listed\n", strings.Join(unreachable, ", "))
		}
		if asJSON {
			return printJSON(out, list)
		}
		snaps = list
	} else {
		s, err := c.Status(ctx, args[0])
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(out, s)
		}
		snaps = []state.Snapshot{s}
	}
	return printTable(out, snaps, time.Now())
}

// printTable writes one line per organization, ordered by ID, with the
// times relative to now and why an organization is not working.
func printTable(out io.Writer, snaps []state.Snapshot, now time.Time) error {
	snaps = slices.Clone(snaps)
	slices.SortFunc(snaps, func(a, b state.Snapshot) int { return compareIDs(a.OrganizationID, b.OrganizationID) })
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	// A cluster names each organization's node; one host has none.
	cluster := slices.ContainsFunc(snaps, func(s state.Snapshot) bool { return s.Node != "" })
	node := func(s state.Snapshot) string {
		if !cluster {
			return ""
		}
		return orDash(s.Node) + "\t"
	}
	// REASON comes last: it is the one column of any length.
	head := "ORG\tSTATUS\tSINCE\tJID\tBAD MAC\tCOOLDOWN\tOUTBOX\tREASON"
	if cluster {
		head = "ORG\tNODE\tSTATUS\tSINCE\tJID\tBAD MAC\tCOOLDOWN\tOUTBOX\tREASON"
	}
	fmt.Fprintln(tw, head)
	for _, s := range snaps {
		fmt.Fprintf(tw, "%s\t%s%s\t%s\t%s\t%d/%d\t%s\t%d queued, %d sent, %d failed%s\t%s\n",
			s.OrganizationID, node(s), s.Status, since(s, now), orDash(s.JID), s.BadMAC.Count, s.BadMAC.Trips,
			cooldownLeft(s.CooldownUntil, now), s.Outbox.Queued, s.Outbox.SentToday, s.Outbox.FailedToday, dailyLimit(s.Sending, now),
			orDash(reason(s)))
	}
	return tw.Flush()
}

// dailyLimit shows the local day's sends against its limit, and how long
// the schedule holds what waits; nothing when there is no limit.
func dailyLimit(s state.Sending, now time.Time) string {
	if s.LimitToday == 0 {
		return ""
	}
	out := fmt.Sprintf("; limit %d/%d today", s.SentToday, s.LimitToday)
	if s.NextWindow != nil {
		out += ", waits " + cooldownLeft(s.NextWindow, now)
	}
	return out
}

// compareIDs puts numeric IDs (Django's primary keys) in numeric order, so
// that 2 comes before 10, ahead of all others in byte order. Keeping the
// two groups apart keeps the order transitive.
func compareIDs(a, b string) int {
	na, errA := strconv.ParseUint(a, 10, 64)
	nb, errB := strconv.ParseUint(b, 10, 64)
	switch {
	case errA == nil && errB == nil && na != nb:
		if na < nb {
			return -1
		}
		return 1
	case errA == nil && errB != nil:
		return -1
	case errA != nil && errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// since is how long the organization has been in its status. The status
// object dates only a connection; for any other status the table shows a
// dash rather than a guess.
func since(s state.Snapshot, now time.Time) string {
	if s.Status != state.Connected || s.ConnectedSince == nil {
		return "-"
	}
	return shortDuration(now.Sub(*s.ConnectedSince))
}

// cooldownLeft rounds up, so that a hold still in force never reads 0s.
func cooldownLeft(until *time.Time, now time.Time) string {
	if until == nil || !until.After(now) {
		return "-"
	}
	return shortDuration(until.Sub(now) + time.Second - 1)
}

// shortDuration keeps the two largest units, as people read an age at a
// glance: 45s, 3m12s, 2h5m, 3d4h. A clock that stepped back reads 0s.
func shortDuration(d time.Duration) string {
	secs := int64(max(d, 0) / time.Second)
	switch {
	case secs < 60:
		return fmt.Sprintf("%ds", secs)
	case secs < 3600:
		return fmt.Sprintf("%dm%ds", secs/60, secs%60)
	case secs < 86400:
		return fmt.Sprintf("%dh%dm", secs/3600, secs%3600/60)
	}
	return fmt.Sprintf("%dd%dh", secs/86400, secs%86400/3600)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
