//go:build cgo

package onnx

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"yibao/face"
	"yibao/face/eval"
)

var (
	sharedOnce sync.Once
	shared     *Embedder
	sharedP    face.Paths
	sharedErr  error
)

// embedder is one Embedder for all tests of the package; it skips the
// test when the models are not installed.
func embedder(t testing.TB) (*Embedder, face.Paths) {
	t.Helper()
	sharedOnce.Do(func() {
		sharedP, sharedErr = face.Locate("")
		if sharedErr != nil {
			return
		}
		shared, sharedErr = New(sharedP)
	})
	if errors.Is(sharedErr, face.ErrNotInstalled) {
		t.Skipf("face models not installed, skipping (install with: %s): %v", face.InstallHint, sharedErr)
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared, sharedP
}

func load(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := face.Decode(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var (
	groupMu    sync.Mutex
	groupCache = map[string]image.Image{}
)

func group(t testing.TB, p face.Paths, name string) image.Image {
	t.Helper()
	groupMu.Lock()
	defer groupMu.Unlock()
	if img, ok := groupCache[name]; ok {
		return img
	}
	for _, g := range p.Groups {
		if filepath.Base(g) == name {
			groupCache[name] = load(t, g)
			return groupCache[name]
		}
	}
	t.Fatalf("%s not installed", name)
	return nil
}

var (
	facesMu    sync.Mutex
	facesCache = map[image.Image][]image.Image{}
)

// faces returns each face of a group photo alone on a gray canvas, left
// to right.
func faces(t testing.TB, e *Embedder, img image.Image) []image.Image {
	t.Helper()
	facesMu.Lock()
	defer facesMu.Unlock()
	if fs, ok := facesCache[img]; ok {
		return fs
	}
	ds, err := e.Detect(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j].Box.Min.X < ds[j-1].Box.Min.X; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
	var out []image.Image
	for _, d := range ds {
		out = append(out, eval.Place(img, d.Box, 1.5, 2, 160))
	}
	facesCache[img] = out
	return out
}

func embed(t testing.TB, e *Embedder, img image.Image) *face.Face {
	t.Helper()
	f, err := e.Embed(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSpaceAndShape(t *testing.T) {
	e, p := embedder(t)
	if e.Space() != Space || Space != "faceplugin-arcface-512/v1" {
		t.Errorf("space %q", e.Space())
	}
	f := embed(t, e, faces(t, e, group(t, p, "sample3.jpg"))[0])
	if len(f.Vector) != Dim {
		t.Fatalf("vector has %d values", len(f.Vector))
	}
	if c := face.Dot(f.Vector, f.Vector); c < 0.999 || c > 1.001 {
		t.Errorf("not normalised: |v|² = %v", c)
	}
	if f.Liveness < 0 || f.Liveness > 1 {
		t.Errorf("liveness %v", f.Liveness)
	}
	if f.Quality.Width < face.MinFaceWidth || f.Quality.DetScore < 0.65 || f.Quality.Brightness < face.MinBrightness || f.Quality.Sharpness <= 0 {
		t.Errorf("quality %+v", f.Quality)
	}
	if !f.Box.In(image.Rect(0, 0, 1000, 1000)) || f.Box.Dx() < 80 {
		t.Errorf("box %v", f.Box)
	}
}

func TestBadFrames(t *testing.T) {
	e, p := embedder(t)
	ctx := context.Background()
	gray := func(w, h int, v uint8) image.Image {
		m := image.NewGray(image.Rect(0, 0, w, h))
		for i := range m.Pix {
			m.Pix[i] = v
		}
		return m
	}
	one := faces(t, e, group(t, p, "sample3.jpg"))[1]
	cases := []struct {
		name string
		img  image.Image
		want error
	}{
		{"blank", gray(640, 480, 128), face.ErrNoFace},
		{"group photo", group(t, p, "sample5.jpg"), face.ErrManyFaces},
		{"dark", eval.Darken(one, 0.12), face.ErrTooDark},
		{"tiny image", gray(120, 120, 128), face.ErrTooSmall},
		{"small face", eval.Place(one, image.Rect(0, 0, one.Bounds().Dx(), one.Bounds().Dy()), 1, 1.2, 130), face.ErrTooSmall},
		{"huge", &image.Gray{Rect: image.Rect(0, 0, 5000, 10)}, face.ErrBadImage},
		{"nil", nil, face.ErrBadImage},
	}
	for _, c := range cases {
		_, err := e.Embed(ctx, c.img)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.Embed(cancelled, one); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestSamePersonDifferentPerson: a face and its augmentations stay close;
// the others in the same photo (certainly different people) stay far.
// (Across all six group photos, different people reach 0.38 at most; the
// calibration, yibao face eval, sets the thresholds.)
func TestSamePersonDifferentPerson(t *testing.T) {
	e, p := embedder(t)
	names := []string{"sample3.jpg", "sample4.jpg"}
	if raceOn {
		names = names[:1]
	}
	for _, name := range names {
		fs := faces(t, e, group(t, p, name))
		var vs []*face.Face
		for _, f := range fs {
			vs = append(vs, embed(t, e, f))
		}
		for i, f := range fs {
			for _, a := range eval.Augments {
				img, err := a.Apply(f)
				if err != nil {
					t.Fatal(err)
				}
				g := embed(t, e, img)
				if c := face.Dot(vs[i].Vector, g.Vector); c < 0.6 {
					t.Errorf("%s face %d vs %s: cosine %.3f, want ≥ 0.6", name, i+1, a.Name, c)
				}
			}
			for j := i + 1; j < len(vs); j++ {
				if c := face.Dot(vs[i].Vector, vs[j].Vector); c > 0.35 {
					t.Errorf("%s faces %d and %d: cosine %.3f, want ≤ 0.35", name, i+1, j+1, c)
				}
			}
		}
	}
}

// TestJPEGUpload runs the service's path: JPEG bytes → Decode → Embed.
func TestJPEGUpload(t *testing.T) {
	e, p := embedder(t)
	f := faces(t, e, group(t, p, "sample6.jpg"))[2]
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, f, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	img, err := face.Decode(&buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c := face.Dot(embed(t, e, f).Vector, embed(t, e, img).Vector); c < 0.9 {
		t.Errorf("JPEG round trip: cosine %.3f", c)
	}
}

// TestConcurrentEmbed: parallel calls give the same vectors as one call.
func TestConcurrentEmbed(t *testing.T) {
	e, p := embedder(t)
	fs := faces(t, e, group(t, p, "sample5.jpg"))
	want := make([][]float32, len(fs))
	for i, f := range fs {
		want[i] = embed(t, e, f).Vector
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rounds := 2 * len(fs)
			if raceOn {
				rounds = 2
			}
			for k := range rounds {
				i := (g + k) % len(fs)
				got, err := e.Embed(context.Background(), fs[i])
				if err != nil {
					t.Error(err)
					return
				}
				if c := face.Dot(got.Vector, want[i]); c < 0.9999 {
					t.Errorf("face %d: concurrent vector differs (cosine %v)", i, c)
				}
			}
		}()
	}
	wg.Wait()
}

// TestBackgroundFaceIgnored: a much smaller face behind the patient does
// not make the frame ambiguous.
func TestBackgroundFaceIgnored(t *testing.T) {
	e, p := embedder(t)
	fs := faces(t, e, group(t, p, "sample3.jpg"))
	canvas := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for i := range canvas.Pix {
		canvas.Pix[i] = 128
	}
	paste(canvas, fs[0], 40, 40, 360)  // the patient: face ~160 px
	paste(canvas, fs[1], 470, 20, 150) // a passer-by: face ~70 px
	f, err := e.Embed(context.Background(), canvas)
	if err != nil {
		t.Fatal(err)
	}
	if f.Box.Min.X > 320 {
		t.Errorf("picked the background face at %v", f.Box)
	}
}

// paste draws src scaled to size×size at (x, y) (nearest neighbour).
func paste(dst *image.RGBA, src image.Image, x, y, size int) {
	b := src.Bounds()
	for j := range size {
		for i := range size {
			c := color.RGBAModel.Convert(src.At(b.Min.X+i*b.Dx()/size, b.Min.Y+j*b.Dy()/size)).(color.RGBA)
			dst.SetRGBA(x+i, y+j, c)
		}
	}
}

// BenchmarkEmbed is one 640×480 camera frame through the whole pipeline
// (detect, landmarks, align, embed, liveness).
func BenchmarkEmbed(b *testing.B) {
	e, p := embedder(b)
	enrolled, _, err := eval.DemoPersons(context.Background(), e, p)
	if err != nil {
		b.Fatal(err)
	}
	frame := enrolled.Frame
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Embed(context.Background(), frame); err != nil {
			b.Fatal(err)
		}
	}
}
