// Package gallery is an in-memory 1:N index of face templates: exact
// brute-force cosine search, sharded over goroutines. 100,000 templates of
// 512 float32 (200 MB) take about 7 ms per query on 2 cores; past a few
// million, partition galleries (by region, by hospital) rather than index
// them approximately. It does no I/O: the service loads it from the
// database and keeps it in step.
package gallery

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
)

// Match is one template and its cosine to the query.
type Match struct {
	ID    int64
	Score float32
}

// Index maps IDs to L2-normalised vectors of one dimension. It is safe for
// concurrent use; searches run in parallel with each other.
type Index struct {
	dim int
	mu  sync.RWMutex
	ids []int64
	vec []float32 // len(ids) × dim
	pos map[int64]int
	// Parallel is the number of goroutines a search uses (default
	// GOMAXPROCS); set before use.
	Parallel int
}

// New makes an empty index of dim-dimensional vectors.
func New(dim int) *Index {
	return &Index{dim: dim, pos: map[int64]int{}}
}

// Dim is the vector length.
func (x *Index) Dim() int { return x.dim }

// Len is the number of templates.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.ids)
}

// Add stores a copy of v, L2-normalised, under id, replacing what id had.
func (x *Index) Add(id int64, v []float32) error {
	if len(v) != x.dim {
		return fmt.Errorf("gallery: vector has %d values, index has %d", len(v), x.dim)
	}
	var n float64
	for _, f := range v {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("gallery: vector has a non-finite value")
		}
		n += float64(f) * float64(f)
	}
	if n == 0 {
		return fmt.Errorf("gallery: zero vector")
	}
	s := float32(1 / math.Sqrt(n))
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.pos[id]
	if !ok {
		i = len(x.ids)
		x.ids = append(x.ids, id)
		x.vec = append(x.vec, make([]float32, x.dim)...)
		x.pos[id] = i
	}
	dst := x.vec[i*x.dim : (i+1)*x.dim]
	for k, f := range v {
		dst[k] = f * s
	}
	return nil
}

// Remove deletes id; it reports whether it was there.
func (x *Index) Remove(id int64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.pos[id]
	if !ok {
		return false
	}
	last := len(x.ids) - 1
	if i != last {
		x.ids[i] = x.ids[last]
		copy(x.vec[i*x.dim:(i+1)*x.dim], x.vec[last*x.dim:])
		x.pos[x.ids[i]] = i
	}
	x.ids = x.ids[:last]
	x.vec = x.vec[:last*x.dim]
	delete(x.pos, id)
	return true
}

// Has reports whether id is stored.
func (x *Index) Has(id int64) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.pos[id]
	return ok
}

// minShard is the fewest templates worth a goroutine of their own.
const minShard = 4096

// Search returns the k templates most similar to q (cosine, q normalised
// here), best first, among the IDs that filter accepts (all if filter is
// nil). filter is called from several goroutines at once. Fewer than k
// results come back when fewer templates qualify.
func (x *Index) Search(q []float32, k int, filter func(id int64) bool) ([]Match, error) {
	if len(q) != x.dim {
		return nil, fmt.Errorf("gallery: query has %d values, index has %d", len(q), x.dim)
	}
	if k <= 0 {
		return nil, nil
	}
	qn := make([]float32, x.dim)
	var n float64
	for _, f := range q {
		n += float64(f) * float64(f)
	}
	if n == 0 || math.IsNaN(n) || math.IsInf(n, 0) {
		return nil, fmt.Errorf("gallery: query is not a finite non-zero vector")
	}
	s := float32(1 / math.Sqrt(n))
	for i, f := range q {
		qn[i] = f * s
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	total := len(x.ids)
	par := x.Parallel
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	par = max(1, min(par, total/minShard))
	if par == 1 {
		return x.scan(qn, 0, total, k, filter), nil
	}
	parts := make([][]Match, par)
	var wg sync.WaitGroup
	for p := range par {
		lo, hi := total*p/par, total*(p+1)/par
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[p] = x.scan(qn, lo, hi, k, filter)
		}()
	}
	wg.Wait()
	var all []Match
	for _, p := range parts {
		all = append(all, p...)
	}
	sort.Slice(all, func(i, j int) bool { return better(all[i], all[j]) })
	if len(all) > k {
		all = all[:k]
	}
	return all, nil
}

// better orders matches: higher score first, then lower ID, so results
// do not depend on insertion order or sharding.
func better(a, b Match) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.ID < b.ID
}

// scan is the top-k of templates lo..hi, best first.
func (x *Index) scan(q []float32, lo, hi, k int, filter func(int64) bool) []Match {
	top := make([]Match, 0, k+1)
	d := x.dim
	for i := lo; i < hi; i++ {
		id := x.ids[i]
		if filter != nil && !filter(id) {
			continue
		}
		s := dot(q, x.vec[i*d:(i+1)*d])
		m := Match{ID: id, Score: s}
		if len(top) == k && !better(m, top[k-1]) {
			continue
		}
		// insert in order
		j := len(top)
		top = append(top, m)
		for j > 0 && better(m, top[j-1]) {
			top[j] = top[j-1]
			j--
		}
		top[j] = m
		if len(top) > k {
			top = top[:k]
		}
	}
	return top
}

// dot is the dot product of two equally long vectors, eight lanes at a
// time through array pointers (no per-element bounds checks).
func dot(a, b []float32) float32 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	for len(a) >= 8 && len(b) >= 8 {
		x, y := (*[8]float32)(a[:8]), (*[8]float32)(b[:8])
		s0 += x[0] * y[0]
		s1 += x[1] * y[1]
		s2 += x[2] * y[2]
		s3 += x[3] * y[3]
		s4 += x[4] * y[4]
		s5 += x[5] * y[5]
		s6 += x[6] * y[6]
		s7 += x[7] * y[7]
		a, b = a[8:], b[8:]
	}
	for i := range min(len(a), len(b)) {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3) + (s4 + s5) + (s6 + s7)
}

// Rule is the 1:N decision rule: the best match is accepted only if it
// reaches Threshold and beats the second best by at least Margin, so a
// query that resembles two enrolled people identifies neither. Search
// with k ≥ 2 to apply it.
type Rule struct {
	Threshold float32 // minimum cosine of the best match
	Margin    float32 // minimum best − second best
}

// Margin is the best score minus the second best of a Search result, best
// first; a missing second counts as −1 (the lowest cosine), an empty
// result has margin 0.
func Margin(ms []Match) float32 {
	switch len(ms) {
	case 0:
		return 0
	case 1:
		return ms[0].Score + 1
	}
	return ms[0].Score - ms[1].Score
}

// Why a Rule refused.
const (
	NoCandidates   = "no_candidates"
	BelowThreshold = "below_threshold"
	Ambiguous      = "ambiguous"
)

// Decide applies r to a Search result (best first). It returns the
// accepted match, or ok = false and why: NoCandidates, BelowThreshold or
// Ambiguous.
func (r Rule) Decide(ms []Match) (best Match, ok bool, reason string) {
	switch {
	case len(ms) == 0:
		return Match{}, false, NoCandidates
	case ms[0].Score < r.Threshold:
		return Match{}, false, BelowThreshold
	case Margin(ms) < r.Margin:
		return Match{}, false, Ambiguous
	}
	return ms[0], true, ""
}
