package interop

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Outcome is the result of one test case for one pair.
type Outcome string

// Outcomes, as the QUIC interop runner names them.
const (
	Succeeded   Outcome = "succeeded"
	Failed      Outcome = "failed"
	Unsupported Outcome = "unsupported"
)

func (o Outcome) symbol() string {
	switch o {
	case Succeeded:
		return "✓"
	case Failed:
		return "✕"
	}
	return "?"
}

// CaseResult is one test case's result for one pair.
type CaseResult struct {
	Abbr   string  `json:"abbr"`
	Name   string  `json:"name"`
	Result Outcome `json:"result"`
	// Reason says why it failed or was unsupported (not in the QUIC
	// runner's layout; viewers ignore it).
	Reason string `json:"reason,omitempty"`
	// Details carries a measurement's value.
	Details string `json:"-"`
}

// MeasurementResult is one measurement for one pair.
type MeasurementResult struct {
	Name    string  `json:"name"`
	Abbr    string  `json:"abbr"`
	Result  Outcome `json:"result"`
	Details string  `json:"details"`
}

// TestInfo describes a test in the results' "tests" table.
type TestInfo struct {
	Name string `json:"name"`
	Desc string `json:"desc"`
}

// Results is the outcome of a run, laid out like the QUIC interop
// runner's JSON (servers → senders, clients → receivers): results and
// measurements hold one list per pair, receivers major, senders minor.
type Results struct {
	StartTime    int64                 `json:"start_time"`
	EndTimeUnix  int64                 `json:"end_time"`
	LogDir       string                `json:"log_dir"`
	Senders      []string              `json:"senders"`
	Receivers    []string              `json:"receivers"`
	URLs         map[string]string     `json:"urls"`
	Tests        map[string]TestInfo   `json:"tests"`
	Protocol     string                `json:"protocol"`
	Mode         Mode                  `json:"mode"`
	Results      [][]CaseResult        `json:"results"`
	Measurements [][]MeasurementResult `json:"measurements"`

	// EndTime is set when the run ends.
	EndTime time.Time `json:"-"`
	order   []*TestCase
}

func newResults(r *Runner, mode Mode) *Results {
	res := &Results{
		StartTime: time.Now().Unix(),
		LogDir:    r.LogDir,
		Senders:   r.Senders,
		Receivers: r.Receivers,
		URLs:      map[string]string{},
		Tests:     map[string]TestInfo{},
		Protocol:  "h3m",
		Mode:      mode,
		order:     r.Tests,
	}
	for _, n := range append(append([]string(nil), r.Senders...), r.Receivers...) {
		res.URLs[n] = r.Registry[n].URL
	}
	for _, tc := range r.Tests {
		res.Tests[tc.Abbr] = TestInfo{Name: tc.Name, Desc: tc.Desc}
	}
	return res
}

func (res *Results) add(snd, rcv string, results []CaseResult, ms []MeasurementResult) {
	// Appended in the runner's loop order: receivers major, senders minor.
	res.Results = append(res.Results, results)
	res.Measurements = append(res.Measurements, ms)
}

// pair returns the index of a pair in Results/Measurements, or -1.
func (res *Results) pair(snd, rcv string) int {
	si, ri := -1, -1
	for i, s := range res.Senders {
		if s == snd {
			si = i
		}
	}
	for i, r := range res.Receivers {
		if r == rcv {
			ri = i
		}
	}
	idx := ri*len(res.Senders) + si
	if si < 0 || ri < 0 || idx >= len(res.Results) {
		return -1
	}
	return idx
}

// Cell returns the test results of one pair (nil if it did not run).
func (res *Results) Cell(snd, rcv string) []CaseResult {
	if i := res.pair(snd, rcv); i >= 0 {
		return res.Results[i]
	}
	return nil
}

// WriteJSON writes the results as indented JSON.
func (res *Results) WriteJSON(w io.Writer) error {
	if res.EndTime.IsZero() { // an interrupted run
		res.EndTime = time.Now()
	}
	res.EndTimeUnix = res.EndTime.Unix()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// cellText groups a pair's letters by outcome, succeeded first:
// "✓(A P) ✕(L) ?(D)".
func cellText(results []CaseResult) []string {
	var lines []string
	for _, o := range []Outcome{Succeeded, Unsupported, Failed} {
		var ab []string
		for _, r := range results {
			if r.Result == o {
				ab = append(ab, r.Abbr)
			}
		}
		if len(ab) > 0 {
			lines = append(lines, o.symbol()+"("+strings.Join(ab, " ")+")")
		}
	}
	return lines
}

func measureText(ms []MeasurementResult) []string {
	var lines []string
	for _, m := range ms {
		if m.Result == Succeeded {
			lines = append(lines, m.Abbr+": "+m.Details)
		} else {
			lines = append(lines, m.Abbr+": "+m.Result.symbol())
		}
	}
	return lines
}

// WriteText prints the matrix as a text table: senders as columns,
// receivers as rows, each cell the letters grouped by outcome, then the
// measurements and a legend.
func (res *Results) WriteText(w io.Writer) {
	res.writeTable(w, false)
}

// WriteMarkdown prints the matrix as a Markdown table.
func (res *Results) WriteMarkdown(w io.Writer) {
	res.writeTable(w, true)
}

func (res *Results) writeTable(w io.Writer, md bool) {
	hasResults, hasMeasure := false, false
	for _, r := range res.Results {
		hasResults = hasResults || len(r) > 0
	}
	for _, m := range res.Measurements {
		hasMeasure = hasMeasure || len(m) > 0
	}
	if hasResults {
		res.table(w, md, "Test results", func(i int) []string { return cellText(res.Results[i]) })
	}
	if hasMeasure {
		res.table(w, md, "Measurements", func(i int) []string { return measureText(res.Measurements[i]) })
	}
	// Legend.
	abbrs := make([]string, 0, len(res.Tests))
	for a := range res.Tests {
		abbrs = append(abbrs, a)
	}
	sort.Slice(abbrs, func(i, j int) bool { return res.testIndex(abbrs[i]) < res.testIndex(abbrs[j]) })
	if md {
		fmt.Fprintln(w)
	}
	for _, a := range abbrs {
		if md {
			fmt.Fprintf(w, "- **%s** %s: %s\n", a, res.Tests[a].Name, res.Tests[a].Desc)
		} else {
			fmt.Fprintf(w, "%-2s %s\n", a, res.Tests[a].Name)
		}
	}
	fmt.Fprintln(w, "✓ succeeded, ✕ failed, ? unsupported")
}

func (res *Results) testIndex(abbr string) int {
	for i, tc := range res.order {
		if tc.Abbr == abbr {
			return i
		}
	}
	return len(res.order)
}

func (res *Results) table(w io.Writer, md bool, title string, cell func(i int) []string) {
	header := append([]string{"receiver \\ sender"}, res.Senders...)
	rows := [][]string{}
	for ri, rcv := range res.Receivers {
		row := []string{rcv}
		for si := range res.Senders {
			i := ri*len(res.Senders) + si
			if i >= len(res.Results) {
				row = append(row, "")
				continue
			}
			sep := "\n"
			if md {
				sep = "<br>"
			}
			row = append(row, strings.Join(cell(i), sep))
		}
		rows = append(rows, row)
	}
	if md {
		fmt.Fprintf(w, "\n### %s\n\n", title)
		fmt.Fprintln(w, "| "+strings.Join(header, " | ")+" |")
		fmt.Fprintln(w, "|"+strings.Repeat(" --- |", len(header)))
		for _, r := range rows {
			fmt.Fprintln(w, "| "+strings.Join(r, " | ")+" |")
		}
		return
	}
	// Text: each cell may span several lines; pad columns.
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = textWidth(h)
	}
	for _, r := range rows {
		for i, cellv := range r {
			for _, l := range strings.Split(cellv, "\n") {
				widths[i] = max(widths[i], textWidth(l))
			}
		}
	}
	line := func() {
		for _, wd := range widths {
			fmt.Fprint(w, "+"+strings.Repeat("-", wd+2))
		}
		fmt.Fprintln(w, "+")
	}
	printRow := func(cells []string) {
		split := make([][]string, len(cells))
		n := 1
		for i, cv := range cells {
			split[i] = strings.Split(cv, "\n")
			n = max(n, len(split[i]))
		}
		for l := 0; l < n; l++ {
			for i := range cells {
				s := ""
				if l < len(split[i]) {
					s = split[i][l]
				}
				fmt.Fprintf(w, "| %s%s ", s, strings.Repeat(" ", widths[i]-textWidth(s)))
			}
			fmt.Fprintln(w, "|")
		}
	}
	fmt.Fprintln(w, title+":")
	line()
	printRow(header)
	line()
	for _, r := range rows {
		printRow(r)
		line()
	}
}

// textWidth counts runes (the symbols are one column wide).
func textWidth(s string) int { return len([]rune(s)) }
