package eval

import (
	"math"
	"sort"
)

// Point is one threshold of a ROC: a pair is accepted when its cosine is
// ≥ T.
type Point struct {
	T   float64
	FAR float64 // impostor pairs accepted / impostor pairs
	FRR float64 // genuine pairs rejected / genuine pairs
	FA  int     // impostor pairs accepted
	FR  int     // genuine pairs rejected
}

// Curve is FAR and FRR of one genuine and one impostor score set.
type Curve struct {
	genuine, impostor []float64 // sorted ascending
}

// NewCurve sorts copies of the scores.
func NewCurve(genuine, impostor []float64) *Curve {
	g := append([]float64(nil), genuine...)
	im := append([]float64(nil), impostor...)
	sort.Float64s(g)
	sort.Float64s(im)
	return &Curve{g, im}
}

// At is the point at threshold t.
func (c *Curve) At(t float64) Point {
	// genuine rejected: scores < t; impostors accepted: scores >= t.
	fr := sort.SearchFloat64s(c.genuine, t)
	fa := len(c.impostor) - sort.SearchFloat64s(c.impostor, t)
	p := Point{T: t, FA: fa, FR: fr}
	if len(c.impostor) > 0 {
		p.FAR = float64(fa) / float64(len(c.impostor))
	}
	if len(c.genuine) > 0 {
		p.FRR = float64(fr) / float64(len(c.genuine))
	}
	return p
}

// Table is the curve at from, from+step, … ≤ to.
func (c *Curve) Table(from, to, step float64) []Point {
	var out []Point
	for i := 0; ; i++ {
		t := from + float64(i)*step
		if t > to+step/2 {
			break
		}
		out = append(out, c.At(math.Round(t*1e6)/1e6))
	}
	return out
}

// EER is the equal error rate: where FAR and FRR cross, scanning every
// observed score as a threshold; it returns the rate (the mean of the two
// at the closest point) and that threshold.
func (c *Curve) EER() (rate, threshold float64) {
	if len(c.genuine) == 0 || len(c.impostor) == 0 {
		return math.NaN(), math.NaN()
	}
	cands := append(append([]float64(nil), c.genuine...), c.impostor...)
	sort.Float64s(cands)
	best := math.Inf(1)
	for _, t := range cands {
		p := c.At(t)
		if d := math.Abs(p.FAR - p.FRR); d < best || d == best && t < threshold {
			best, rate, threshold = d, (p.FAR+p.FRR)/2, t
		}
	}
	return rate, threshold
}

// ZeroFAR is the lowest threshold on a grid of step that no impostor pair
// reaches: the strictest FAR the set can demonstrate (0 of n, i.e. below
// 1/n; below 3/n with 95% confidence by the rule of three).
func (c *Curve) ZeroFAR(step float64) Point {
	if len(c.impostor) == 0 {
		return c.At(-1)
	}
	maxImp := c.impostor[len(c.impostor)-1]
	t := math.Floor(maxImp/step)*step + step
	t = math.Round(t*1e6) / 1e6
	return c.At(t)
}

// Stats summarises a score set.
type Stats struct {
	N                            int
	Mean, Min, P5, P50, P95, Max float64
}

// Summary computes Stats.
func Summary(xs []float64) Stats {
	if len(xs) == 0 {
		return Stats{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	q := func(p float64) float64 { return s[int(math.Round(p*float64(len(s)-1)))] }
	return Stats{N: len(s), Mean: sum / float64(len(s)), Min: s[0], P5: q(0.05), P50: q(0.5), P95: q(0.95), Max: s[len(s)-1]}
}
