package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"time"

	"yibao/face"
)

// Config chooses how much of the set to run.
type Config struct {
	// Augment also embeds the four augmentations of every face.
	Augment bool
	// Workers embeds this many images at once (default GOMAXPROCS).
	Workers int
	// MaxOthers keeps only the first MaxOthers facematch crops of other
	// people (0: all); for quick runs.
	MaxOthers int
}

// Kinds of pairs.
const (
	KindPhotos    = "photos"    // two different photos of the man
	KindAugmented = "augmented" // a face and an augmentation of the same capture
	KindImpostor  = "impostor"  // two different people, labels certain
)

// Embedded is one sample variant and its template (or why it has none).
type Embedded struct {
	Sample  *Sample
	Variant string // "orig" or an Augment name
	Face    *face.Face
	Err     error
}

// Report is the outcome of a calibration run.
type Report struct {
	Space    string
	Started  time.Time
	Elapsed  time.Duration
	Samples  int // faces
	Images   int // faces × variants embedded
	Failures []Embedded

	// Scores by kind of pair.
	Photos, Augmented, Impostor []float64
	// IndependentImpostor counts impostor pairs between originals only
	// (augmented copies are correlated with their original).
	IndependentImpostor int
	// MaxImpostor is the highest impostor score and its pair.
	MaxImpostor     float64
	MaxImpostorPair [2]string

	Liveness       []float64 // per embedded original
	EmbedMillisP50 float64

	// Curves.
	PhotosCurve, AllCurve *Curve
}

// Run builds the set, embeds everything with emb and scores the pairs.
func Run(ctx context.Context, emb face.Embedder, det face.Detector, paths face.Paths, cfg Config, progress io.Writer) (*Report, error) {
	if progress == nil {
		progress = io.Discard
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	started := time.Now()
	samples, err := Samples(ctx, det, paths, progress)
	if err != nil {
		return nil, err
	}
	if cfg.MaxOthers > 0 {
		kept, others := samples[:0], 0
		for _, s := range samples {
			if s.Person != Man && s.Group == "" {
				if others++; others > cfg.MaxOthers {
					continue
				}
			}
			kept = append(kept, s)
		}
		samples = kept
	}
	var jobs []*Embedded
	for i := range samples {
		jobs = append(jobs, &Embedded{Sample: &samples[i], Variant: "orig"})
		if cfg.Augment {
			for _, a := range Augments {
				jobs = append(jobs, &Embedded{Sample: &samples[i], Variant: a.Name})
			}
		}
	}
	fmt.Fprintf(progress, "embedding %d images (%d faces × %d variants) with %s…\n", len(jobs), len(samples), len(jobs)/max(len(samples), 1), emb.Space())
	augments := map[string]Augment{}
	for _, a := range Augments {
		augments[a.Name] = a
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		done  int
		times []float64
		next  = make(chan *Embedded)
	)
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				img := j.Sample.Img
				if a, ok := augments[j.Variant]; ok {
					if img, j.Err = a.Apply(img); j.Err != nil {
						continue
					}
				}
				t0 := time.Now()
				j.Face, j.Err = emb.Embed(ctx, img)
				ms := float64(time.Since(t0).Microseconds()) / 1000
				mu.Lock()
				times = append(times, ms)
				done++
				if done%100 == 0 {
					fmt.Fprintf(progress, "  %d/%d embedded\n", done, len(jobs))
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &Report{Space: emb.Space(), Started: started, Samples: len(samples), Images: len(jobs)}
	sort.Float64s(times)
	if len(times) > 0 {
		r.EmbedMillisP50 = times[len(times)/2]
	}
	var ok []*Embedded
	for _, j := range jobs {
		if j.Err != nil {
			if !isQualityErr(j.Err) {
				return nil, fmt.Errorf("%s (%s): %w", j.Sample.Name, j.Variant, j.Err)
			}
			r.Failures = append(r.Failures, *j)
			continue
		}
		ok = append(ok, j)
		if j.Variant == "orig" {
			r.Liveness = append(r.Liveness, j.Face.Liveness)
		}
	}
	r.MaxImpostor = -2
	for a := 0; a < len(ok); a++ {
		for b := a + 1; b < len(ok); b++ {
			ea, eb := ok[a], ok[b]
			kind := pairKind(ea, eb)
			if kind == "" {
				continue
			}
			s := float64(face.Dot(ea.Face.Vector, eb.Face.Vector))
			switch kind {
			case KindPhotos:
				r.Photos = append(r.Photos, s)
			case KindAugmented:
				r.Augmented = append(r.Augmented, s)
			case KindImpostor:
				r.Impostor = append(r.Impostor, s)
				if ea.Variant == "orig" && eb.Variant == "orig" {
					r.IndependentImpostor++
				}
				if s > r.MaxImpostor {
					r.MaxImpostor = s
					r.MaxImpostorPair = [2]string{ea.Sample.Name + " " + ea.Variant, eb.Sample.Name + " " + eb.Variant}
				}
			}
		}
	}
	r.PhotosCurve = NewCurve(r.Photos, r.Impostor)
	r.AllCurve = NewCurve(append(append([]float64(nil), r.Photos...), r.Augmented...), r.Impostor)
	r.Elapsed = time.Since(started)
	fmt.Fprintf(progress, "scored %d genuine (%d different photos, %d augmented) and %d impostor pairs in %s\n",
		len(r.Photos)+len(r.Augmented), len(r.Photos), len(r.Augmented), len(r.Impostor), r.Elapsed.Round(time.Millisecond))
	return r, nil
}

// pairKind classifies a pair, or "" if it is not used.
func pairKind(a, b *Embedded) string {
	sa, sb := a.Sample, b.Sample
	switch {
	case sa == sb:
		if a.Variant == "orig" || b.Variant == "orig" {
			return KindAugmented
		}
		return "" // two augmentations of one capture: redundant
	case sa.Person == Man && sb.Person == Man:
		return KindPhotos
	case sa.Person == Man || sb.Person == Man:
		return KindImpostor
	case sa.Group != "" && sa.Group == sb.Group:
		return KindImpostor // two people in one photo
	}
	return ""
}

func isQualityErr(err error) bool {
	for _, e := range []error{face.ErrNoFace, face.ErrManyFaces, face.ErrTooSmall, face.ErrTooDark, face.ErrBadImage} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
