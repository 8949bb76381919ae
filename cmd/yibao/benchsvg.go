package main

import (
	"fmt"
	"strings"
	"time"

	"yibao/loadgen"
)

// e2eSVG draws a run of `bench e2e` as two panels, by hand (no chart
// library for two bar charts): on the left the transactions completed in
// each second of the run, on the right each step's p50, p95 and p99.
func e2eSVG(title string, res *loadgen.Result) string {
	var ok []loadgen.Tx
	for _, tx := range res.Txs {
		if tx.Outcome == loadgen.Ok {
			ok = append(ok, tx)
		}
	}
	secs := int(res.Elapsed/time.Second) + 1
	perSec := make([]int, secs)
	for _, tx := range ok {
		if i := int(tx.Start.Add(tx.Total).Sub(res.Start) / time.Second); i >= 0 && i < secs {
			perSec[i]++
		}
	}
	maxRate := 1
	for _, n := range perSec {
		maxRate = max(maxRate, n)
	}
	type bar struct {
		label string
		q     [3]time.Duration
	}
	pick := func(xs []time.Duration) [3]time.Duration {
		return [3]time.Duration{loadgen.Percentile(xs, .5), loadgen.Percentile(xs, .95), loadgen.Percentile(xs, .99)}
	}
	all := make([]time.Duration, len(ok))
	for i, tx := range ok {
		all[i] = tx.Total
	}
	bars := []bar{{"whole", pick(all)}}
	for s := loadgen.StepCode; s < loadgen.NumSteps; s++ {
		xs := make([]time.Duration, len(ok))
		for i, tx := range ok {
			xs[i] = tx.Steps[s]
		}
		bars = append(bars, bar{s.String(), pick(xs)})
	}
	maxLat := time.Millisecond
	for _, b := range bars {
		maxLat = max(maxLat, b.q[2])
	}

	const W, H, pad, mid = 960, 360, 50, 480
	var sb strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&sb, f, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	p(`<rect width="%d" height="%d" fill="#fff"/>`+"\n", W, H)
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", pad, esc(title))
	// Left: completions per second.
	x0, y0, w, h := float64(pad), float64(H-pad), float64(mid-2*pad), float64(H-2*pad-20)
	p(`<text x="%g" y="%g">transactions completed per second (%d in %.1f s)</text>`+"\n", x0, y0-h-6, len(ok), res.Elapsed.Seconds())
	p(`<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#333"/>`+"\n", x0, y0, x0+w, y0)
	bw := w / float64(secs)
	for i, n := range perSec {
		bh := h * float64(n) / float64(maxRate)
		p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#1565c0"><title>second %d: %d</title></rect>`+"\n", x0+float64(i)*bw+1, y0-bh, max(bw-2, 1), bh, i+1, n)
	}
	p(`<text x="%g" y="%g" text-anchor="end">%d</text>`+"\n", x0-4, y0-h+4, maxRate)
	p(`<text x="%g" y="%g" text-anchor="end">0</text>`+"\n", x0-4, y0+4)
	p(`<text x="%g" y="%g" text-anchor="middle">seconds</text>`+"\n", x0+w/2, y0+30)
	// Right: step latencies.
	x1, w1 := float64(mid+90), float64(W-mid-90-pad)
	rowH := h / float64(len(bars))
	colors := [3]string{"#2e7d32", "#f9a825", "#c62828"}
	p(`<text x="%g" y="%g">latency of ok transactions: p50 · p95 · p99 (max %s)</text>`+"\n", float64(mid), y0-h-6, maxLat.Round(time.Millisecond))
	for i, b := range bars {
		y := y0 - h + float64(i)*rowH
		p(`<text x="%g" y="%.1f" text-anchor="end">%s</text>`+"\n", x1-6, y+rowH/2+4, esc(b.label))
		for k := 2; k >= 0; k-- { // longest first, so shorter ones draw on top
			bl := w1 * float64(b.q[k]) / float64(maxLat)
			p(`<rect x="%g" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s p%s %s</title></rect>`+"\n",
				x1, y+rowH*0.2, bl, rowH*0.6, colors[k], esc(b.label), [3]string{"50", "95", "99"}[k], b.q[k].Round(10*time.Microsecond))
		}
		p(`<text x="%.1f" y="%.1f" font-size="11">%s</text>`+"\n", x1+w1*float64(b.q[2])/float64(maxLat)+4, y+rowH/2+4, b.q[2].Round(100*time.Microsecond))
	}
	p("</svg>\n")
	return sb.String()
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
