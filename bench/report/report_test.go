package report

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	rss := Row{"worker RSS", "MiB"}
	qr := Row{"start → QR", "ms"}
	tab := New([]string{"value", "K=1"}, rss, qr)
	// Added out of the declared order: the table keeps the declared one.
	for _, v := range []float64{250, 210, 220} {
		tab.Add(qr, "value", v)
	}
	for _, v := range []float64{30.44, 29.0} {
		tab.Add(rss, "K=1", v)
	}
	var b strings.Builder
	if err := tab.Write(&b, "date: today"); err != nil {
		t.Fatal(err)
	}
	want := "date: today\n" +
		"metric      value   K=1  unit\n" +
		"worker RSS         29.7  MiB\n" +
		"start → QR    220        ms\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestAddUndeclaredPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New([]string{"value"}).Add(Row{"x", "ms"}, "value", 1)
}

func TestFormat(t *testing.T) {
	for v, want := range map[float64]string{1234.5: "1234", 30.44: "30.4", 1.5549: "1.55", 0: "0.00", -12.34: "-12.3"} {
		if got := format(v); got != want {
			t.Errorf("format(%v) = %q, want %q", v, got, want)
		}
	}
}

// Two "of which anon" rows under different figures once shared one set of
// samples, so each printed the median of both.
func TestRowDeclaredTwice(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a row declared twice")
		}
	}()
	New([]string{"K=1"}, Row{"  of which anon", "MiB"}, Row{"worker PSS", "MiB"}, Row{"  of which anon", "MiB"})
}
