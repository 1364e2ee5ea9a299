package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// formatValue prints a value in a unit a reader takes in at a glance.
func formatValue(v float64, unit string) string {
	switch unit {
	case unitMicros:
		switch a := math.Abs(v); {
		case a >= 1e6:
			return fmt.Sprintf("%.2f s", v/1e6)
		case a >= 1e3:
			return fmt.Sprintf("%.2f ms", v/1e3)
		case a >= 100:
			return fmt.Sprintf("%.0f us", v)
		default:
			return fmt.Sprintf("%.1f us", v)
		}
	case unitRate:
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2fM/s", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.1fk/s", v/1e3)
		default:
			return fmt.Sprintf("%.0f/s", v)
		}
	case unitCount:
		return fmt.Sprintf("%.0f", v)
	case unitBytes:
		switch a := math.Abs(v); {
		case a >= 1<<30:
			return fmt.Sprintf("%.2f GiB", v/(1<<30))
		case a >= 1<<20:
			return fmt.Sprintf("%.1f MiB", v/(1<<20))
		case a >= 1<<10:
			return fmt.Sprintf("%.1f KiB", v/(1<<10))
		default:
			return fmt.Sprintf("%.0f B", v)
		}
	}
	return fmt.Sprintf("%g %s", v, unit)
}

// cells are the printed columns of a metric.
func cells(m metric) (value, twin, twinValue, ratio, goal string) {
	value = formatValue(m.Lib, m.Unit)
	twin, twinValue, ratio, goal = "", "", "", ""
	if m.Twin != "" {
		twin, twinValue = m.Twin, formatValue(m.Raw, m.Unit)
		if m.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", m.Ratio)
		}
	}
	if m.Goal != nil && m.Ratio != 0 {
		mark := "ok"
		if !m.Met {
			mark = "MISSED"
		}
		goal = fmt.Sprintf("%s %.1f %s", m.Goal.Op, m.Goal.Value, mark)
	}
	return
}

func writeTable(w io.Writer, rep report, format string) error {
	if format == "markdown" {
		return writeMarkdown(w, rep)
	}
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMEASURE\tLIBRARY\tTWIN\tTWIN VALUE\tLIB/TWIN\tGOAL")
	for _, res := range rep.Scenarios {
		for _, m := range res.Metrics {
			v, twin, tv, ratio, goal := cells(m)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", res.Name, m.Name, v, twin, tv, ratio, goal)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Rows without a goal (or a twin) would end in padding.
	for line := range strings.Lines(table.String()) {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " \n")); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\n%s, R%d, %d CPUs, %d-byte payloads, medians of %d repetitions, %.0fs in all.\n",
		rep.Server, rep.Replicas, rep.CPUs, rep.Payload, rep.Reps, rep.Seconds)
	writeNotesAndMisses(w, rep, "")
	return nil
}

func writeMarkdown(w io.Writer, rep report) error {
	fmt.Fprintln(w, "| scenario | measure | library | twin | twin value | lib/twin | goal |")
	fmt.Fprintln(w, "|---|---|---:|---|---:|---:|---|")
	for _, res := range rep.Scenarios {
		for _, m := range res.Metrics {
			v, twin, tv, ratio, goal := cells(m)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", res.Name, m.Name, v, twin, tv, ratio, goal)
		}
	}
	fmt.Fprintf(w, "\n%s, R%d, %d CPUs, %d-byte payloads, medians of %d repetitions, %.0fs in all.\n",
		rep.Server, rep.Replicas, rep.CPUs, rep.Payload, rep.Reps, rep.Seconds)
	writeNotesAndMisses(w, rep, "- ")
	return nil
}

func writeNotesAndMisses(w io.Writer, rep report, bullet string) {
	fmt.Fprintln(w, "\nHow each scenario ran:")
	if bullet != "" {
		fmt.Fprintln(w)
	}
	for _, res := range rep.Scenarios {
		fmt.Fprintf(w, "%s%s (%.1fs): %s.\n", bullet, res.Name, res.Seconds, strings.Join(res.Notes, "; "))
	}
	if len(rep.GoalsMissed) == 0 {
		fmt.Fprintln(w, "\nEvery goal met.")
		return
	}
	fmt.Fprintln(w, "\nGoals missed:")
	if bullet != "" {
		fmt.Fprintln(w)
	}
	for _, g := range rep.GoalsMissed {
		fmt.Fprintf(w, "%s%s\n", bullet, g)
	}
}

// headline is a scenario's first compared metric, for the progress line.
func headline(res result) string {
	for _, m := range res.Metrics {
		if m.Twin != "" {
			v, twin, tv, ratio, _ := cells(m)
			return fmt.Sprintf("%s %s vs %s %s (%s)", m.Name, v, twin, tv, ratio)
		}
	}
	if len(res.Metrics) > 0 {
		m := res.Metrics[0]
		return m.Name + " " + formatValue(m.Lib, m.Unit)
	}
	return ""
}
