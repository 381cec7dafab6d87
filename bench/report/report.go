// Package report collects the samples that several bench runs take of each
// figure and prints their medians as one aligned table, so that one noisy
// run cannot set a figure on its own.
package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/wa-sidecar/wa-sidecar/bench/measure"
)

// Row is one line of the table: what is measured and in what unit.
type Row struct {
	Name, Unit string
}

// Table holds every sample by row and column. Rows print in the order New
// was given them, whatever order the runs measure them in.
type Table struct {
	rows    []Row
	cols    []string
	samples map[Row]map[string][]float64
}

// New returns an empty table with these value columns (between the
// metric's name and its unit) and rows. A row given twice (same name and
// unit) would pool two figures' samples into one median, so it panics: a
// bug in the caller.
func New(cols []string, rows ...Row) *Table {
	t := &Table{rows: rows, cols: cols, samples: map[Row]map[string][]float64{}}
	for _, r := range rows {
		if _, twice := t.samples[r]; twice {
			panic(fmt.Sprintf("report: row %q is declared twice", r.Name))
		}
		t.samples[r] = map[string][]float64{}
	}
	return t
}

// Add records one run's sample of row r in column col. A row or column the
// table was not made with is a bug in the caller, not a measurement, hence
// the panic.
func (t *Table) Add(r Row, col string, v float64) {
	cells, ok := t.samples[r]
	if !ok {
		panic(fmt.Sprintf("report: row %q was not declared", r.Name))
	}
	known := false
	for _, c := range t.cols {
		known = known || c == col
	}
	if !known {
		panic(fmt.Sprintf("report: column %q was not declared", col))
	}
	cells[col] = append(cells[col], v)
}

// Write prints the notes, one per line, then the table of medians: names
// left-aligned, figures right-aligned, empty cells left blank.
func (t *Table) Write(w io.Writer, notes ...string) error {
	grid := [][]string{append(append([]string{"metric"}, t.cols...), "unit")}
	for _, r := range t.rows {
		line := []string{r.Name}
		for _, c := range t.cols {
			cell := ""
			if s := t.samples[r][c]; len(s) > 0 {
				cell = format(measure.Median(s))
			}
			line = append(line, cell)
		}
		grid = append(grid, append(line, r.Unit))
	}
	width := make([]int, len(grid[0]))
	for _, line := range grid {
		for i, cell := range line {
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	var b strings.Builder
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	for _, line := range grid {
		for i, cell := range line {
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			switch {
			case i == 0:
				b.WriteString(cell + pad)
			case i == len(line)-1:
				b.WriteString("  " + cell)
			default:
				b.WriteString("  " + pad + cell)
			}
		}
		b.WriteString("\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// format gives three significant figures, enough for a median of a few
// runs on a shared machine, without the exponent notation of %g.
func format(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
