package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"yibao/face"
	"yibao/face/eval"
	"yibao/face/gallery"
	"yibao/face/onnx"
)

// runFace dispatches `yibao face eval|frames`.
func runFace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: yibao face eval [--out DIR] | yibao face frames [--out DIR]")
	}
	switch args[0] {
	case "eval":
		return runFaceEval(ctx, args[1:], stdout, stderr)
	case "frames":
		return runFaceFrames(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown face command %q (have: eval, frames)", args[0])
}

// openFace installs the models if needed (npm ci, progress on stderr) and
// loads the embedder.
func openFace(ctx context.Context, dir string, stderr io.Writer) (*onnx.Embedder, face.Paths, error) {
	paths, err := face.Ensure(ctx, dir, stderr)
	if err != nil {
		return nil, paths, err
	}
	e, err := onnx.New(paths)
	return e, paths, err
}

// runFaceEval is `yibao face eval [--out DIR]`: the calibration. Progress
// goes to stderr, the summary to stdout, the report (eval.md, roc.svg,
// scores.csv) to DIR.
func runFaceEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao face eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "face-eval", "write eval.md, roc.svg and scores.csv into this directory")
	dir := fs.String("face-dir", "", "where the face models are (default: third_party/face; $"+face.EnvDir+" overrides)")
	noAug := fs.Bool("no-augment", false, "skip the augmented variants (faster)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	e, paths, err := openFace(ctx, *dir, stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	r, err := eval.Run(ctx, e, e, paths, eval.Config{Augment: !*noAug}, stderr)
	if err != nil {
		return err
	}
	if err := r.WriteFiles(*out); err != nil {
		return err
	}
	op := r.Operating()
	ph, au, im := eval.Summary(r.Photos), eval.Summary(r.Augmented), eval.Summary(r.Impostor)
	fmt.Fprintf(stdout, "face calibration — %s — %d faces, %d images (%d refused by the quality gates)\n", r.Space, r.Samples, r.Images, len(r.Failures))
	fmt.Fprintf(stdout, "genuine, different photos  %6d pairs  mean %.3f  p5 %.3f  min %.3f\n", ph.N, ph.Mean, ph.P5, ph.Min)
	fmt.Fprintf(stdout, "genuine, augmented         %6d pairs  mean %.3f  p5 %.3f  min %.3f\n", au.N, au.Mean, au.P5, au.Min)
	fmt.Fprintf(stdout, "impostor                   %6d pairs  mean %.3f  p95 %.3f  max %.3f  (%d between originals)\n", im.N, im.Mean, im.P95, im.Max, r.IndependentImpostor)
	fmt.Fprintf(stdout, "EER (different photos)     %.1f %% at cosine %.3f\n", 100*op.EER, op.EERThreshold)
	fmt.Fprintf(stdout, "lowest demonstrable FAR    0/%d (< %.1e) at cosine ≥ %.2f; FRR there %.1f %% (different photos)\n",
		len(r.Impostor), 1/float64(max(len(r.Impostor), 1)), op.ZeroFAR.T, 100*op.ZeroFAR.FRR)
	fmt.Fprintf(stdout, "production target          FAR ≤ %.0e with the second factor (needs ~%.0e impostor pairs to show on faces alone)\n", eval.ProductionFAR, 3/eval.ProductionFAR)
	fmt.Fprintf(stdout, "report                     %s\n", filepath.Join(*out, "eval.md"))
	return nil
}

// runFaceFrames is `yibao face frames [--out DIR]`: the demo persons for
// the browser test — enrolment photos (JPEG) and fake-camera files (Y4M,
// 640×480 4:2:0, two seconds in which the face comes closer and moves
// back, looped by Chromium) of the enrolled and of the other person.
func runFaceFrames(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao face frames", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "face-frames", "output directory")
	dir := fs.String("face-dir", "", "where the face models are (default: third_party/face; $"+face.EnvDir+" overrides)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	e, paths, err := openFace(ctx, *dir, stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	enrolled, other, err := eval.DemoPersons(ctx, e, paths)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, p := range []struct {
		name string
		who  eval.Person
	}{{"enrolled", enrolled}, {"other", other}} {
		for _, f := range []struct {
			file  string
			write func(io.Writer) error
		}{
			{p.name + ".jpg", func(w io.Writer) error { return jpeg.Encode(w, p.who.Photo, &jpeg.Options{Quality: 90}) }},
			{p.name + "-frame.jpg", func(w io.Writer) error { return jpeg.Encode(w, p.who.Frame, &jpeg.Options{Quality: 90}) }},
			{p.name + ".y4m", func(w io.Writer) error { return writeBreathing(w, p.who.Frame) }},
		} {
			path := filepath.Join(*out, f.file)
			file, err := os.Create(path)
			if err != nil {
				return err
			}
			err = f.write(file)
			if cerr := file.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "%-8s %s → %s.jpg (enrolment photo), %s.y4m (camera)\n", p.name, p.who.Name, p.name, p.name)
	}
	return nil
}

// runBenchFace is `yibao bench face`: embedding time per 640×480 frame, and
// 1:N search time over 100,000 random templates.
func runBenchFace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao bench face", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("face-dir", "", "where the face models are (default: third_party/face; $"+face.EnvDir+" overrides)")
	frames := fs.Int("frames", 200, "frames to embed")
	templates := fs.Int("templates", 100_000, "templates in the 1:N gallery")
	queries := fs.Int("queries", 200, "1:N searches")
	quick := fs.Bool("quick", false, "a short smoke run (CI)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *quick {
		*frames, *queries = 30, 30
	}
	fmt.Fprintf(stdout, "face benchmark — %s\n", machine())
	e, paths, err := openFace(ctx, *dir, stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	enrolled, _, err := eval.DemoPersons(ctx, e, paths)
	if err != nil {
		return err
	}
	frame := enrolled.Frame
	if _, err := e.Embed(ctx, frame); err != nil { // warm up
		return err
	}
	// One caller at a time: the latency a terminal sees.
	lat := make([]time.Duration, 0, *frames)
	for range *frames {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := e.Embed(ctx, frame); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	fmt.Fprintf(stdout, "embed   %s 640×480 frame (detect, landmarks, align, 512-D, liveness): p50 %s  p95 %s  (%d frames, one at a time)\n",
		e.Space(), ms(pct(lat, 50)), ms(pct(lat, 95)), len(lat))
	// All cores busy: throughput.
	workers := runtime.GOMAXPROCS(0)
	t0 := time.Now()
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < *frames; i += workers {
				if _, err := e.Embed(ctx, frame); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintf(stdout, "embed   %d callers: %.0f frames/s\n", workers, float64(*frames)/time.Since(t0).Seconds())

	// 1:N search.
	const dim = onnx.Dim
	idx := gallery.New(dim)
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, dim)
	for i := range *templates {
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		if err := idx.Add(int64(i+1), v); err != nil {
			return err
		}
	}
	q := make([]float32, dim)
	slat := make([]time.Duration, 0, *queries)
	for range *queries {
		for j := range q {
			q[j] = float32(r.NormFloat64())
		}
		t0 := time.Now()
		if _, err := idx.Search(q, 2, nil); err != nil {
			return err
		}
		slat = append(slat, time.Since(t0))
	}
	fmt.Fprintf(stdout, "search  1:N over %d templates × %d-D (exact, %d goroutines): p50 %s  p95 %s  (%d queries)\n",
		*templates, dim, runtime.GOMAXPROCS(0), ms(pct(slat, 50)), ms(pct(slat, 95)), len(slat))
	return nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
