package gallery

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
)

func randVec(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var n float64
	for i := range v {
		v[i] = float32(r.NormFloat64())
		n += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(n))
	}
	return v
}

// naive is the obviously correct search the index must agree with.
func naive(vecs map[int64][]float32, q []float32, k int, filter func(int64) bool) []Match {
	var all []Match
	for id, v := range vecs {
		if filter != nil && !filter(id) {
			continue
		}
		var s float64
		for i := range q {
			s += float64(q[i]) * float64(v[i])
		}
		all = append(all, Match{ID: id, Score: float32(s)})
	}
	sort.Slice(all, func(i, j int) bool { return better(all[i], all[j]) })
	if len(all) > k {
		all = all[:k]
	}
	return all
}

func TestSearchMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const dim = 64
	for _, n := range []int{0, 1, 2, 5, 100, 3*minShard + 17} {
		x := New(dim)
		x.Parallel = 3
		vecs := map[int64][]float32{}
		for i := range n {
			id := int64(i*7 + 3)
			v := randVec(r, dim)
			vecs[id] = v
			if err := x.Add(id, v); err != nil {
				t.Fatal(err)
			}
		}
		// Remove a few and replace a few.
		for id := range vecs {
			if id%5 == 0 {
				if !x.Remove(id) {
					t.Fatalf("remove %d: not found", id)
				}
				delete(vecs, id)
			} else if id%11 == 0 {
				v := randVec(r, dim)
				vecs[id] = v
				x.Add(id, v)
			}
		}
		if x.Len() != len(vecs) {
			t.Fatalf("n=%d: Len %d, want %d", n, x.Len(), len(vecs))
		}
		even := func(id int64) bool { return id%2 == 0 }
		for trial := range 20 {
			q := randVec(r, dim)
			if trial%2 == 0 && len(vecs) > 0 {
				for _, v := range vecs { // a query close to a stored vector
					q = append([]float32(nil), v...)
					q[0] += 0.05
					break
				}
			}
			for _, k := range []int{1, 2, 10} {
				for _, f := range []func(int64) bool{nil, even} {
					got, err := x.Search(q, k, f)
					if err != nil {
						t.Fatal(err)
					}
					want := naive(vecs, normalized(q), k, f)
					if len(got) != len(want) {
						t.Fatalf("n=%d k=%d: %d results, want %d", n, k, len(got), len(want))
					}
					for i := range got {
						if got[i].ID != want[i].ID || math.Abs(float64(got[i].Score-want[i].Score)) > 1e-4 {
							t.Fatalf("n=%d k=%d #%d: got %+v, want %+v", n, k, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

func normalized(q []float32) []float32 {
	var n float64
	for _, f := range q {
		n += float64(f) * float64(f)
	}
	out := make([]float32, len(q))
	for i, f := range q {
		out[i] = f / float32(math.Sqrt(n))
	}
	return out
}

func TestBadVectors(t *testing.T) {
	x := New(4)
	if err := x.Add(1, []float32{1, 2, 3}); err == nil {
		t.Error("short vector accepted")
	}
	if err := x.Add(1, []float32{0, 0, 0, 0}); err == nil {
		t.Error("zero vector accepted")
	}
	if err := x.Add(1, []float32{float32(math.NaN()), 0, 0, 1}); err == nil {
		t.Error("NaN accepted")
	}
	if _, err := x.Search([]float32{1, 0}, 2, nil); err == nil {
		t.Error("short query accepted")
	}
	if _, err := x.Search([]float32{0, 0, 0, 0}, 2, nil); err == nil {
		t.Error("zero query accepted")
	}
	if x.Remove(9) {
		t.Error("removed a missing id")
	}
}

func TestRule(t *testing.T) {
	x := New(3)
	x.Add(1, []float32{1, 0, 0})
	x.Add(2, []float32{0.9, 0.436, 0}) // cos to (1,0,0) ≈ 0.9
	x.Add(3, []float32{0, 0, 1})
	rule := Rule{Threshold: 0.5, Margin: 0.15}

	// Close to 1 and to 2: ambiguous.
	ms, _ := x.Search([]float32{1, 0.2, 0}, 2, nil)
	if _, ok, why := rule.Decide(ms); ok || why != Ambiguous {
		t.Errorf("near two people: ok=%v %q, want ambiguous (margin %.3f)", ok, why, Margin(ms))
	}
	// With 2 filtered out of the narrowed gallery, 1 wins clearly.
	ms, _ = x.Search([]float32{1, 0.2, 0}, 2, func(id int64) bool { return id != 2 })
	if m, ok, _ := rule.Decide(ms); !ok || m.ID != 1 {
		t.Errorf("narrowed: %+v ok=%v, want 1", m, ok)
	}
	// Far from everybody: below threshold.
	ms, _ = x.Search([]float32{0, 1, 0.1}, 2, nil)
	if _, ok, why := rule.Decide(ms); ok || why != BelowThreshold {
		t.Errorf("stranger: ok=%v %q, want below_threshold", ok, why)
	}
	// One candidate: the margin is against −1.
	ms, _ = x.Search([]float32{0, 0, 1}, 2, func(id int64) bool { return id == 3 })
	if m, ok, _ := rule.Decide(ms); !ok || m.ID != 3 || Margin(ms) != 2 {
		t.Errorf("single candidate: %+v ok=%v margin %.2f", m, ok, Margin(ms))
	}
	// Nobody in the gallery.
	ms, _ = x.Search([]float32{0, 0, 1}, 2, func(int64) bool { return false })
	if _, ok, why := rule.Decide(ms); ok || why != NoCandidates || Margin(ms) != 0 {
		t.Errorf("empty: ok=%v %q", ok, why)
	}
}

func TestConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := New(32)
	x.Parallel = 2
	for i := range 2 * minShard {
		x.Add(int64(i), randVec(r, 32))
	}
	qs := make([][]float32, 8)
	for i := range qs {
		qs[i] = randVec(r, 32)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if g == 0 {
					id := int64(10_000 + i)
					x.Add(id, qs[i%len(qs)])
					x.Remove(id)
					continue
				}
				if _, err := x.Search(qs[i%len(qs)], 2, nil); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if x.Len() != 2*minShard {
		t.Errorf("Len %d", x.Len())
	}
}

// BenchmarkSearch100k is one 1:N query over 100,000 random 512-D
// templates (the target: ≤ 20 ms on 2 cores).
func BenchmarkSearch100k(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	x := New(512)
	v := make([]float32, 512)
	for i := range 100_000 {
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		x.Add(int64(i), v)
	}
	q := randVec(r, 512)
	b.ResetTimer()
	for b.Loop() {
		if _, err := x.Search(q, 2, nil); err != nil {
			b.Fatal(err)
		}
	}
}
