//go:build cgo

// Package onnx is the bundled face.Embedder: ONNX Runtime in process
// (github.com/yalue/onnxruntime_go, which loads libonnxruntime.so.1 at run
// time) running the faceplugin models from npm. The pipeline:
//
//  1. Detect on a 320×240 RGB resize, (v−127)/128; score ≥ 0.65; NMS at
//     IoU 0.4; each box made square with side = its height.
//  2. 68 landmarks on the 64×64 gray crop of the box, /256.
//  3. The eye centres (means of points 37,38,40,41 and 43,44,46,47) and the
//     nose tip (30) map by a 3-point affine transform onto the ArcFace
//     112×112 reference (38.29,51.70), (73.53,51.50), (56.03,71.74);
//     bilinear warp.
//  4. The feature model gives 512 values, L2-normalised.
//  5. Liveness: a 2.7× crop around the box resized to 128×128, raw RGB
//     0–255; softmax over 3 classes; class 0 is "real" (the vendor's own
//     demos label a face live when softmax[0] is high, fake when below
//     0.3–0.6; see docs).
//
// An Embedder holds a small pool of pipelines (one set of four sessions
// each) and is safe for concurrent use.
package onnx

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"runtime"
	"sort"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"yibao/face"
	"yibao/face/internal/imgx"
)

// Space is the embedding space of this model and pipeline. Bump the
// version when anything that changes the vectors changes (model file,
// alignment, normalisation).
const Space = "faceplugin-arcface-512/v1"

// Dim is the template length.
const Dim = 512

// Options tune an Embedder; the zero value is the default.
type Options struct {
	// Pipelines is how many frames can be embedded at once (default:
	// GOMAXPROCS, at most 4). Each holds its own four sessions (~40 MB).
	Pipelines int
	// Threads is ONNX Runtime's intra-op thread count per session
	// (default 1: parallelism comes from Pipelines).
	Threads int
	// MinFaceWidth overrides face.MinFaceWidth (calibration of small
	// crops only; never lower it in production).
	MinFaceWidth int
	// ScoreThreshold overrides the detector threshold 0.65.
	ScoreThreshold float64
}

// Embedder is the ONNX face.Embedder. Close it to free the sessions.
type Embedder struct {
	opt   Options
	pool  chan *pipeline
	all   []*pipeline
	close sync.Once
}

var (
	_ face.Embedder = (*Embedder)(nil)
	_ face.Detector = (*Embedder)(nil)
)

var (
	envMu   sync.Mutex
	envPath string
)

// initRuntime loads the ONNX Runtime library once per process.
func initRuntime(lib string) error {
	envMu.Lock()
	defer envMu.Unlock()
	if ort.IsInitialized() {
		if envPath != lib {
			return fmt.Errorf("face/onnx: ONNX Runtime already loaded from %s, not %s", envPath, lib)
		}
		return nil
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("face/onnx: load %s: %w", lib, err)
	}
	envPath = lib
	return nil
}

// New loads the runtime and the models named by paths (see face.Locate).
func New(paths face.Paths) (*Embedder, error) { return NewWithOptions(paths, Options{}) }

// NewWithOptions is New with tuning.
func NewWithOptions(paths face.Paths, opt Options) (*Embedder, error) {
	if paths.Runtime == "" || paths.Detect == "" || paths.Landmark == "" || paths.Feature == "" {
		return nil, fmt.Errorf("%w (run %q)", face.ErrNotInstalled, face.InstallHint)
	}
	if opt.Pipelines <= 0 {
		opt.Pipelines = min(runtime.GOMAXPROCS(0), 4)
	}
	if opt.Threads <= 0 {
		opt.Threads = 1
	}
	if opt.MinFaceWidth <= 0 {
		opt.MinFaceWidth = face.MinFaceWidth
	}
	if opt.ScoreThreshold <= 0 {
		opt.ScoreThreshold = 0.65
	}
	if err := initRuntime(paths.Runtime); err != nil {
		return nil, err
	}
	e := &Embedder{opt: opt, pool: make(chan *pipeline, opt.Pipelines)}
	for range opt.Pipelines {
		p, err := newPipeline(paths, opt.Threads)
		if err != nil {
			e.Close()
			return nil, err
		}
		e.all = append(e.all, p)
		e.pool <- p
	}
	return e, nil
}

// Space implements face.Embedder.
func (e *Embedder) Space() string { return Space }

// Close frees the sessions. The Embedder must not be used afterwards.
func (e *Embedder) Close() error {
	var err error
	e.close.Do(func() {
		for _, p := range e.all {
			err = errors.Join(err, p.destroy())
		}
	})
	return err
}

func (e *Embedder) acquire(ctx context.Context) (*pipeline, error) {
	select {
	case p := <-e.pool:
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Detect returns every face in img, largest first, without quality gates
// (but within face.MaxImageSide).
func (e *Embedder) Detect(ctx context.Context, img image.Image) ([]face.Detection, error) {
	if img == nil || img.Bounds().Empty() || img.Bounds().Dx() > face.MaxImageSide || img.Bounds().Dy() > face.MaxImageSide {
		return nil, face.ErrBadImage
	}
	p, err := e.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { e.pool <- p }()
	m := imgx.FromImage(img)
	ds, err := p.detect(m, e.opt.ScoreThreshold)
	for i := range ds {
		ds[i].Box = ds[i].Box.Add(img.Bounds().Min)
	}
	return ds, err
}

// Embed implements face.Embedder.
func (e *Embedder) Embed(ctx context.Context, img image.Image) (*face.Face, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if img == nil {
		return nil, face.ErrBadImage
	}
	b := img.Bounds()
	if b.Dx() > face.MaxImageSide || b.Dy() > face.MaxImageSide || b.Empty() {
		return nil, fmt.Errorf("%w: %d×%d pixels", face.ErrBadImage, b.Dx(), b.Dy())
	}
	if min(b.Dx(), b.Dy()) < face.MinImageSide {
		return nil, fmt.Errorf("%w: image %d×%d, need %d px on the shorter side", face.ErrTooSmall, b.Dx(), b.Dy(), face.MinImageSide)
	}
	m := imgx.FromImage(img)
	if l := m.MeanLuma(image.Rect(0, 0, m.W, m.H)); l < face.MinBrightness {
		return nil, fmt.Errorf("%w: mean luma %.0f, need %d", face.ErrTooDark, l, face.MinBrightness)
	}
	p, err := e.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { e.pool <- p }()

	dets, err := p.detect(m, e.opt.ScoreThreshold)
	if err != nil {
		return nil, err
	}
	if len(dets) == 0 {
		return nil, face.ErrNoFace
	}
	// Faces less than half as wide as the largest are background
	// (passers-by behind the patient); a second face of comparable size
	// makes the frame ambiguous.
	if len(dets) > 1 && dets[1].Box.Dx()*2 >= dets[0].Box.Dx() {
		return nil, fmt.Errorf("%w: %d faces", face.ErrManyFaces, len(dets))
	}
	d := dets[0]
	if d.Box.Dx() < e.opt.MinFaceWidth {
		return nil, fmt.Errorf("%w: face %d px wide, need %d", face.ErrTooSmall, d.Box.Dx(), e.opt.MinFaceWidth)
	}
	bright := m.MeanLuma(d.Box)
	if bright < face.MinBrightness {
		return nil, fmt.Errorf("%w: face mean luma %.0f, need %d", face.ErrTooDark, bright, face.MinBrightness)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := p.embed(m, d)
	if err != nil {
		return nil, err
	}
	f.Quality.Brightness = bright
	f.Box = f.Box.Add(b.Min)
	return f, nil
}

// pipeline is one set of sessions with their bound tensors; used by one
// goroutine at a time.
type pipeline struct {
	det, lmk, feat, live     *ort.AdvancedSession
	detIn, lmkIn, featIn     *ort.Tensor[float32]
	liveIn                   *ort.Tensor[float32]
	detScores, detBoxes      *ort.Tensor[float32]
	lmkOut, featOut, liveOut *ort.Tensor[float32]
	tensors                  []interface{ Destroy() error }
	sessions                 []*ort.AdvancedSession
	hasLiveness              bool
}

func newPipeline(paths face.Paths, threads int) (p *pipeline, err error) {
	p = &pipeline{}
	defer func() {
		if err != nil {
			p.destroy()
		}
	}()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		return nil, err
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, err
	}
	// No busy-waiting between frames: a terminal sends a frame now and
	// then, and the cores serve HTTP meanwhile.
	for _, k := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
		if err := opts.AddSessionConfigEntry(k, "0"); err != nil {
			return nil, err
		}
	}
	tensor := func(dims ...int64) (*ort.Tensor[float32], error) {
		t, err := ort.NewEmptyTensor[float32](ort.NewShape(dims...))
		if err == nil {
			p.tensors = append(p.tensors, t)
		}
		return t, err
	}
	session := func(path string, inNames, outNames []string, in []ort.Value, out []ort.Value) (*ort.AdvancedSession, error) {
		s, err := ort.NewAdvancedSession(path, inNames, outNames, in, out, opts)
		if err != nil {
			return nil, fmt.Errorf("face/onnx: load %s: %w", path, err)
		}
		p.sessions = append(p.sessions, s)
		return s, nil
	}
	if p.detIn, err = tensor(1, 3, detH, detW); err != nil {
		return nil, err
	}
	if p.detScores, err = tensor(1, numPriors, 2); err != nil {
		return nil, err
	}
	if p.detBoxes, err = tensor(1, numPriors, 4); err != nil {
		return nil, err
	}
	if p.det, err = session(paths.Detect, []string{"input"}, []string{"scores", "boxes"},
		[]ort.Value{p.detIn}, []ort.Value{p.detScores, p.detBoxes}); err != nil {
		return nil, err
	}
	if p.lmkIn, err = tensor(1, 1, lmkSize, lmkSize); err != nil {
		return nil, err
	}
	if p.lmkOut, err = tensor(1, 136); err != nil {
		return nil, err
	}
	if p.lmk, err = session(paths.Landmark, []string{"input"}, []string{"output"},
		[]ort.Value{p.lmkIn}, []ort.Value{p.lmkOut}); err != nil {
		return nil, err
	}
	if p.featIn, err = tensor(1, 3, alignSize, alignSize); err != nil {
		return nil, err
	}
	if p.featOut, err = tensor(1, Dim); err != nil {
		return nil, err
	}
	if p.feat, err = session(paths.Feature, []string{"input"}, []string{"output"},
		[]ort.Value{p.featIn}, []ort.Value{p.featOut}); err != nil {
		return nil, err
	}
	if paths.Liveness != "" {
		if p.liveIn, err = tensor(1, 3, liveSize, liveSize); err != nil {
			return nil, err
		}
		if p.liveOut, err = tensor(1, 3); err != nil {
			return nil, err
		}
		if p.live, err = session(paths.Liveness, []string{"input"}, []string{"output"},
			[]ort.Value{p.liveIn}, []ort.Value{p.liveOut}); err != nil {
			return nil, err
		}
		p.hasLiveness = true
	}
	return p, nil
}

func (p *pipeline) destroy() error {
	var err error
	for _, s := range p.sessions {
		err = errors.Join(err, s.Destroy())
	}
	for _, t := range p.tensors {
		err = errors.Join(err, t.Destroy())
	}
	p.sessions, p.tensors = nil, nil
	return err
}

const (
	detW, detH = 320, 240
	numPriors  = 4420
	lmkSize    = 64
	alignSize  = 112
	liveSize   = 128
	liveScale  = 2.7
	nmsIoU     = 0.4
)

// arcfaceRef are the ArcFace reference points of the left eye, the right
// eye and the nose tip in the 112×112 aligned face.
var arcfaceRef = [3][2]float64{{38.29459953, 51.69630051}, {73.53179932, 51.50139999}, {56.02519989, 71.73660278}}

func (p *pipeline) detect(m *imgx.RGB, threshold float64) ([]face.Detection, error) {
	small := m.Resize(image.Rect(0, 0, m.W, m.H), detW, detH)
	in := p.detIn.GetData()
	plane := detW * detH
	for i := 0; i < plane; i++ {
		in[i] = (float32(small.Pix[3*i]) - 127) / 128
		in[plane+i] = (float32(small.Pix[3*i+1]) - 127) / 128
		in[2*plane+i] = (float32(small.Pix[3*i+2]) - 127) / 128
	}
	if err := p.det.Run(); err != nil {
		return nil, fmt.Errorf("face/onnx: detect: %w", err)
	}
	scores, boxes := p.detScores.GetData(), p.detBoxes.GetData()
	type cand struct {
		x1, y1, x2, y2, s float64
	}
	var cs []cand
	for i := 0; i < numPriors; i++ {
		s := float64(scores[2*i+1])
		if s < threshold {
			continue
		}
		c := cand{float64(boxes[4*i]), float64(boxes[4*i+1]), float64(boxes[4*i+2]), float64(boxes[4*i+3]), s}
		if c.x2 <= c.x1 || c.y2 <= c.y1 {
			continue
		}
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].s > cs[j].s })
	iou := func(a, b cand) float64 {
		w := math.Min(a.x2, b.x2) - math.Max(a.x1, b.x1)
		h := math.Min(a.y2, b.y2) - math.Max(a.y1, b.y1)
		if w <= 0 || h <= 0 {
			return 0
		}
		inter := w * h
		return inter / ((a.x2-a.x1)*(a.y2-a.y1) + (b.x2-b.x1)*(b.y2-b.y1) - inter)
	}
	var kept []cand
	for _, c := range cs {
		ok := true
		for _, k := range kept {
			if iou(c, k) > nmsIoU {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, c)
		}
	}
	W, H := float64(m.W), float64(m.H)
	var out []face.Detection
	for _, k := range kept {
		x1, y1, x2, y2 := k.x1*W, k.y1*H, k.x2*W, k.y2*H
		side := y2 - y1
		cx, cy := (x1+x2)/2, (y1+y2)/2
		r := image.Rect(int(math.Max(0, cx-side/2)), int(math.Max(0, cy-side/2)),
			int(math.Min(W-1, cx+side/2)), int(math.Min(H-1, cy+side/2)))
		if r.Dx() < 8 || r.Dy() < 8 {
			continue
		}
		out = append(out, face.Detection{Box: r, Score: k.s})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Box.Dx()*out[i].Box.Dy() > out[j].Box.Dx()*out[j].Box.Dy() })
	return out, nil
}

// landmarks returns the 68 points in image coordinates.
func (p *pipeline) landmarks(m *imgx.RGB, box image.Rectangle) ([68][2]float64, error) {
	var pts [68][2]float64
	crop := m.Resize(box, lmkSize, lmkSize)
	in := p.lmkIn.GetData()
	for i := range in {
		in[i] = float32(imgx.Luma(crop.Pix[3*i], crop.Pix[3*i+1], crop.Pix[3*i+2])) / 256
	}
	if err := p.lmk.Run(); err != nil {
		return pts, fmt.Errorf("face/onnx: landmarks: %w", err)
	}
	out := p.lmkOut.GetData()
	w, h := float64(box.Dx()), float64(box.Dy())
	for i := range pts {
		pts[i] = [2]float64{float64(out[2*i])*w + float64(box.Min.X), float64(out[2*i+1])*h + float64(box.Min.Y)}
	}
	return pts, nil
}

func mean(pts [68][2]float64, idx ...int) [2]float64 {
	var x, y float64
	for _, i := range idx {
		x += pts[i][0]
		y += pts[i][1]
	}
	return [2]float64{x / float64(len(idx)), y / float64(len(idx))}
}

// Align returns the 112×112 ArcFace-aligned face for the landmarks.
func align(m *imgx.RGB, pts [68][2]float64) (*imgx.RGB, error) {
	// The vendor's indices (landmark[74..83] and [86..95] as x,y pairs)
	// are points 37,38,40,41 and 43,44,46,47 counted from 0: the upper and
	// lower eyelid points around each eye. Point 30 is the nose tip.
	src := [3][2]float64{mean(pts, 37, 38, 40, 41), mean(pts, 43, 44, 46, 47), pts[30]}
	fwd, ok := imgx.AffineFrom3(src, arcfaceRef)
	if !ok {
		return nil, face.ErrNoFace
	}
	inv, ok := fwd.Invert()
	if !ok {
		return nil, face.ErrNoFace
	}
	return m.Warp(inv, alignSize, alignSize), nil
}

func (p *pipeline) embed(m *imgx.RGB, d face.Detection) (*face.Face, error) {
	pts, err := p.landmarks(m, d.Box)
	if err != nil {
		return nil, err
	}
	aligned, err := align(m, pts)
	if err != nil {
		return nil, err
	}
	in := p.featIn.GetData()
	plane := alignSize * alignSize
	for i := 0; i < plane; i++ {
		in[i] = (float32(aligned.Pix[3*i]) - 127) / 128
		in[plane+i] = (float32(aligned.Pix[3*i+1]) - 127) / 128
		in[2*plane+i] = (float32(aligned.Pix[3*i+2]) - 127) / 128
	}
	if err := p.feat.Run(); err != nil {
		return nil, fmt.Errorf("face/onnx: feature: %w", err)
	}
	vec := face.Normalize(append([]float32(nil), p.featOut.GetData()...))
	live := -1.0
	if p.hasLiveness {
		probs, err := p.liveness(m, d.Box)
		if err != nil {
			return nil, err
		}
		live = probs[realClass]
	}
	return &face.Face{
		Vector: vec,
		Box:    d.Box,
		Quality: face.Quality{
			Width:     float64(d.Box.Dx()),
			Sharpness: aligned.LaplacianVariance(),
			DetScore:  d.Score,
		},
		Liveness: live,
	}, nil
}

// realClass is the liveness model's class for a real face (see the
// package doc).
const realClass = 0

// liveness crops liveScale × the box around its centre (shifted to stay
// inside the image, as the vendor's code does), resizes to 128×128 and
// returns the softmax of the model's three outputs.
func (p *pipeline) liveness(m *imgx.RGB, box image.Rectangle) ([3]float64, error) {
	W, H := float64(m.W), float64(m.H)
	bw, bh := float64(box.Dx()), float64(box.Dy())
	scale := math.Min(liveScale, math.Min((H-1)/bh, (W-1)/bw))
	nw, nh := bw*scale, bh*scale
	cx, cy := float64(box.Min.X)+bw/2, float64(box.Min.Y)+bh/2
	x1, y1, x2, y2 := cx-nw/2, cy-nh/2, cx+nw/2, cy+nh/2
	if x1 < 0 {
		x2 -= x1
		x1 = 0
	}
	if y1 < 0 {
		y2 -= y1
		y1 = 0
	}
	if x2 > W-1 {
		x1 -= x2 - W + 1
		x2 = W - 1
	}
	if y2 > H-1 {
		y1 -= y2 - H + 1
		y2 = H - 1
	}
	r := image.Rect(int(math.Max(0, x1)), int(math.Max(0, y1)), int(x2), int(y2))
	crop := m.Resize(r, liveSize, liveSize)
	in := p.liveIn.GetData()
	plane := liveSize * liveSize
	for i := 0; i < plane; i++ {
		in[i] = float32(crop.Pix[3*i])
		in[plane+i] = float32(crop.Pix[3*i+1])
		in[2*plane+i] = float32(crop.Pix[3*i+2])
	}
	var probs [3]float64
	if err := p.live.Run(); err != nil {
		return probs, fmt.Errorf("face/onnx: liveness: %w", err)
	}
	out := p.liveOut.GetData()
	mx := math.Max(float64(out[0]), math.Max(float64(out[1]), float64(out[2])))
	var sum float64
	for i, v := range out {
		probs[i] = math.Exp(float64(v) - mx)
		sum += probs[i]
	}
	for i := range probs {
		probs[i] /= sum
	}
	return probs, nil
}
