package suite

import (
	"context"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/bench/report"
)

// checkNumbers is the size of one POST /contacts/check, the most it takes.
const checkNumbers = 500

var (
	rowCheckAsked  = report.Row{Name: "contacts/check, 500 numbers through the worker (paced usync)", Unit: "ms"}
	rowCheckCached = report.Row{Name: "contacts/check, 500 numbers cached", Unit: "ms"}
)

// contactsCheck times a check of checkNumbers numbers never checked, which
// the connected org's worker asks WhatsApp about in paced queries of 50,
// and the same check again, answered from state.db.
func (r *run) contactsCheck(ctx context.Context, org string) error {
	numbers := make([]string, checkNumbers)
	for i := range numbers {
		numbers[i] = fmt.Sprintf("5731%08d", i)
	}
	for _, row := range []report.Row{rowCheckAsked, rowCheckCached} {
		start := time.Now()
		res, err := r.api.CheckNumbers(ctx, org, numbers)
		if err != nil {
			return fmt.Errorf("check %d numbers for %s: %w", len(numbers), org, err)
		}
		if len(res.Results) != len(numbers) {
			return fmt.Errorf("check %d numbers for %s: %d answers", len(numbers), org, len(res.Results))
		}
		r.tab.Add(row, colValue, ms(time.Since(start)))
	}
	return nil
}
