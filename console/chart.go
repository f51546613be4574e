package console

import (
	"fmt"
	"sort"
	"time"

	"github.com/quantaseal/gateway/audit"
)

// Chart geometry, in SVG user units (the SVG scales to the page width).
const (
	chartBuckets   = 24
	chartWidth     = 760
	chartLabelW    = 170 // left column with the operation names
	chartRowH      = 44
	chartBarAreaH  = 34
	chartTopPad    = 8
	chartAxisH     = 28
	chartMaxRows   = 8 // operations beyond these are summed into one "other" row
	unknownOpLabel = "(unknown operation)"
	otherOpsLabel  = "(other operations)"
)

// chart is the model of the audit page's SVG: calls per operation over time, one row
// per operation, each time bucket a bar stacked allow (bottom) and deny (top). The
// template draws it; every label is text that html/template escapes.
type chart struct {
	Width, Height int
	Rows          []chartRow
	Ticks         []chartTick
	Empty         bool
	BucketLabel   string // e.g. "1h"
}

type chartRow struct {
	Label        string
	Total        int
	Allow, Deny  int
	Y            int // top of the row
	LabelY       int
	BaselineY    int
	Bars         []chartBar
	MaxPerBucket int
}

type chartBar struct {
	X, W              string
	AllowY, AllowH    string
	DenyY, DenyH      string
	Title             string
	HasAllow, HasDeny bool
}

type chartTick struct {
	X      string
	Label  string
	Anchor string // SVG text-anchor
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }

// buildChart buckets events (already filtered to [from, to)) by operation and time.
func buildChart(events []audit.Event, from, to time.Time) chart {
	span := to.Sub(from)
	if span <= 0 {
		span = time.Hour
	}
	bucket := span / chartBuckets
	if bucket <= 0 {
		bucket = 1
	}
	type counts struct{ allow, deny [chartBuckets]int }
	byOp := map[string]*counts{}
	totals := map[string]int{}
	for _, e := range events {
		ts, err := e.Timestamp()
		if err != nil || ts.Before(from) || !ts.Before(to) {
			continue
		}
		i := int(ts.Sub(from) / bucket)
		if i >= chartBuckets {
			i = chartBuckets - 1
		}
		op := e.Operation
		if op == "" {
			op = unknownOpLabel
		}
		c := byOp[op]
		if c == nil {
			c = &counts{}
			byOp[op] = c
		}
		if e.Decision == "allow" {
			c.allow[i]++
		} else {
			c.deny[i]++
		}
		totals[op]++
	}
	ops := make([]string, 0, len(byOp))
	for op := range byOp {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if totals[ops[i]] != totals[ops[j]] {
			return totals[ops[i]] > totals[ops[j]]
		}
		return ops[i] < ops[j]
	})
	if len(ops) > chartMaxRows {
		other := &counts{}
		for _, op := range ops[chartMaxRows-1:] {
			for i := range chartBuckets {
				other.allow[i] += byOp[op].allow[i]
				other.deny[i] += byOp[op].deny[i]
			}
			totals[otherOpsLabel] += totals[op]
		}
		ops = append(ops[:chartMaxRows-1], otherOpsLabel)
		byOp[otherOpsLabel] = other
	}

	c := chart{Width: chartWidth, Empty: len(ops) == 0, BucketLabel: bucket.Round(time.Second).String()}
	rows := max(len(ops), 1)
	c.Height = chartTopPad + rows*chartRowH + chartAxisH
	plotW := float64(chartWidth - chartLabelW - 10)
	barW := plotW / chartBuckets
	for ri, op := range ops {
		cs := byOp[op]
		row := chartRow{Label: op, Total: totals[op], Y: chartTopPad + ri*chartRowH}
		row.LabelY = row.Y + chartBarAreaH/2 + 4
		row.BaselineY = row.Y + chartBarAreaH
		for i := range chartBuckets {
			row.Allow += cs.allow[i]
			row.Deny += cs.deny[i]
			row.MaxPerBucket = max(row.MaxPerBucket, cs.allow[i]+cs.deny[i])
		}
		for i := range chartBuckets {
			a, d := cs.allow[i], cs.deny[i]
			if a+d == 0 {
				continue
			}
			scale := float64(chartBarAreaH) / float64(row.MaxPerBucket)
			ah, dh := float64(a)*scale, float64(d)*scale
			x := float64(chartLabelW) + float64(i)*barW + 1
			start := from.Add(time.Duration(i) * bucket)
			row.Bars = append(row.Bars, chartBar{
				X: f1(x), W: f1(barW - 2),
				AllowY: f1(float64(row.BaselineY) - ah), AllowH: f1(ah),
				DenyY: f1(float64(row.BaselineY) - ah - dh), DenyH: f1(dh),
				HasAllow: a > 0, HasDeny: d > 0,
				Title: fmt.Sprintf("%s, %s – %s UTC: %d allowed, %d denied", op,
					start.UTC().Format("01-02 15:04"), start.Add(bucket).UTC().Format("15:04"), a, d),
			})
		}
		c.Rows = append(c.Rows, row)
	}
	for i := 0; i <= 4; i++ {
		t := from.Add(time.Duration(i) * span / 4)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		c.Ticks = append(c.Ticks, chartTick{
			X:      f1(float64(chartLabelW) + plotW*float64(i)/4),
			Label:  t.UTC().Format("01-02 15:04"),
			Anchor: anchor,
		})
	}
	return c
}

// AxisY is the y of the time axis labels.
func (c chart) AxisY() int { return c.Height - 8 }

// AxisLineY is the y of the time axis line.
func (c chart) AxisLineY() int { return c.Height - chartAxisH + 2 }

// PlotRight is the x where the plot ends.
func (c chart) PlotRight() int { return chartWidth - 10 }

// PlotLeft is the x where the plot starts.
func (c chart) PlotLeft() int { return chartLabelW }
