package eval

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"yibao/face"
	"yibao/face/onnx"
)

func TestCurve(t *testing.T) {
	c := NewCurve([]float64{0.5, 0.6, 0.7, 0.8}, []float64{0.1, 0.2, 0.3, 0.55})
	p := c.At(0.55)
	if p.FA != 1 || p.FR != 1 || p.FAR != 0.25 || p.FRR != 0.25 {
		t.Errorf("At(0.55) = %+v", p)
	}
	if p := c.At(0.9); p.FA != 0 || p.FR != 4 {
		t.Errorf("At(0.9) = %+v", p)
	}
	eer, th := c.EER()
	if eer != 0.25 || th != 0.55 {
		t.Errorf("EER %.3f at %.3f", eer, th)
	}
	z := c.ZeroFAR(0.01)
	if z.T != 0.56 || z.FA != 0 || z.FR != 1 {
		t.Errorf("ZeroFAR %+v", z)
	}
	if tab := c.Table(0, 1, 0.25); len(tab) != 5 || tab[4].T != 1 {
		t.Errorf("table %+v", tab)
	}
	// Perfect separation: EER 0.
	if eer, _ := NewCurve([]float64{0.9}, []float64{0.1}).EER(); eer != 0 {
		t.Errorf("separable EER %v", eer)
	}
	s := Summary([]float64{3, 1, 2})
	if s.N != 3 || s.Min != 1 || s.Max != 3 || s.P50 != 2 || s.Mean != 2 {
		t.Errorf("summary %+v", s)
	}
}

func TestReportRenders(t *testing.T) {
	r := &Report{Space: "test/v1", Samples: 3, Images: 3,
		Photos: []float64{0.4, 0.7}, Augmented: []float64{0.9, 0.95}, Impostor: []float64{-0.1, 0.05, 0.2}, IndependentImpostor: 3}
	r.PhotosCurve = NewCurve(r.Photos, r.Impostor)
	r.AllCurve = NewCurve(append(r.Photos, r.Augmented...), r.Impostor)
	svg := r.SVG()
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("SVG is not well-formed XML: %v", err)
	}
	md := r.Markdown()
	for _, want := range []string{"Equal error rate", "Lowest demonstrable FAR", "0.21", "| threshold |", "1e-06"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	dir := t.TempDir()
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"eval.md", "roc.svg", "scores.csv"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestY4M(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for i := 0; i < len(src.Pix); i += 4 {
		src.Pix[i], src.Pix[i+1], src.Pix[i+2], src.Pix[i+3] = 200, 100, 50, 255
	}
	var buf bytes.Buffer
	if err := WriteY4M(&buf, src, 3); err != nil {
		t.Fatal(err)
	}
	header := "YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg"
	if !strings.HasPrefix(buf.String(), header) {
		t.Fatalf("header %q", strings.SplitN(buf.String(), "\n", 2)[0])
	}
	frame := 640*480 + 2*320*240
	headerLen := strings.Index(buf.String(), "\n") + 1
	if buf.Len() != headerLen+3*(len("FRAME\n")+frame) {
		t.Fatalf("size %d", buf.Len())
	}
	img, err := ReadY4MFrame(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	r, g, b, _ := img.At(320, 240).RGBA()
	if d := math.Abs(float64(r>>8)-200) + math.Abs(float64(g>>8)-100) + math.Abs(float64(b>>8)-50); d > 9 {
		t.Errorf("colour after the round trip: %d %d %d", r>>8, g>>8, b>>8)
	}
}

var (
	embOnce sync.Once
	emb     *onnx.Embedder
	embP    face.Paths
	embErr  error
)

func embedder(t *testing.T) (*onnx.Embedder, face.Paths) {
	t.Helper()
	embOnce.Do(func() {
		if embP, embErr = face.Locate(""); embErr == nil {
			emb, embErr = onnx.New(embP)
		}
	})
	if errors.Is(embErr, face.ErrNotInstalled) {
		t.Skipf("face models not installed, skipping (install with: %s): %v", face.InstallHint, embErr)
	}
	if embErr != nil {
		t.Fatal(embErr)
	}
	return emb, embP
}

// TestDemoPersons: the browser test's enrolled and other person separate
// through the fake camera (Y4M) and a JPEG upload.
func TestDemoPersons(t *testing.T) {
	e, p := embedder(t)
	ctx := context.Background()
	enrolled, other, err := DemoPersons(ctx, e, p)
	if err != nil {
		t.Fatal(err)
	}
	if b := enrolled.Frame.Bounds(); b.Dx() != FrameW || b.Dy() != FrameH {
		t.Fatalf("frame %v", b)
	}
	camera := func(img image.Image) *face.Face {
		var y4m bytes.Buffer
		if err := WriteY4M(&y4m, img, 1); err != nil {
			t.Fatal(err)
		}
		frame, err := ReadY4MFrame(&y4m)
		if err != nil {
			t.Fatal(err)
		}
		up, err := JPEGRoundTrip(frame, 80)
		if err != nil {
			t.Fatal(err)
		}
		f, err := e.Embed(ctx, up)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	enrol, err := e.Embed(ctx, enrolled.Photo)
	if err != nil {
		t.Fatal(err)
	}
	same := face.Dot(enrol.Vector, camera(enrolled.Frame).Vector)
	diff := face.Dot(enrol.Vector, camera(other.Frame).Vector)
	t.Logf("enrolled %s: same %.3f, other (%s) %.3f", enrolled.Name, same, other.Name, diff)
	if same < 0.6 || diff > 0.3 {
		t.Errorf("same %.3f (want ≥ 0.6), other %.3f (want ≤ 0.3)", same, diff)
	}
	if enrol.Liveness < 0.5 {
		t.Errorf("enrolment photo liveness %.3f", enrol.Liveness)
	}
}

// TestRun runs the calibration without augmentations and checks the set
// has its expected shape and the model separates it roughly as measured.
func TestRun(t *testing.T) {
	e, p := embedder(t)
	var log bytes.Buffer
	cfg := Config{}
	if raceOn {
		cfg.MaxOthers = 20
	}
	r, err := Run(context.Background(), e, e, p, cfg, &log)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(log.String())
	if n := len(r.Photos); n < 100 {
		t.Errorf("%d genuine pairs of the man's photos, want ≥ 100 (≥ 15 crops)", n)
	}
	if n := len(r.Impostor); n < 1500 && !raceOn || n < 500 {
		t.Errorf("%d impostor pairs, want ≥ 1500", n)
	}
	if len(r.Failures) > 5 {
		t.Errorf("%d faces refused", len(r.Failures))
	}
	ph, im := Summary(r.Photos), Summary(r.Impostor)
	if ph.Mean < 0.35 || im.Mean > 0.15 {
		t.Errorf("genuine mean %.3f, impostor mean %.3f", ph.Mean, im.Mean)
	}
	if eer := r.Operating().EER; eer > 0.25 {
		t.Errorf("EER %.3f", eer)
	}
}
