package imgx

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

func randomYCbCr(r *rand.Rand, w, h int) *image.YCbCr {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for _, p := range [][]byte{m.Y, m.Cb, m.Cr} {
		for i := range p {
			p[i] = byte(r.IntN(256))
		}
	}
	return m
}

func TestFromImageMatchesColorModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	full := randomYCbCr(r, 37, 23)
	sub := full.SubImage(image.Rect(3, 5, 30, 20))
	nrgba := image.NewNRGBA(image.Rect(2, 2, 12, 9))
	for i := range nrgba.Pix {
		nrgba.Pix[i] = byte(r.IntN(256))
		if i%4 == 3 {
			nrgba.Pix[i] = 255
		}
	}
	gray := image.NewGray(image.Rect(0, 0, 5, 4))
	for i := range gray.Pix {
		gray.Pix[i] = byte(r.IntN(256))
	}
	pal := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.RGBA{200, 100, 50, 255}})
	pal.Pix[5] = 1
	for _, img := range []image.Image{full, sub, nrgba, gray, pal} {
		m := FromImage(img)
		b := img.Bounds()
		if m.W != b.Dx() || m.H != b.Dy() {
			t.Fatalf("%T: size %dx%d", img, m.W, m.H)
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				want := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				o := 3 * ((y-b.Min.Y)*m.W + x - b.Min.X)
				if d := absDiff(m.Pix[o], want.R) + absDiff(m.Pix[o+1], want.G) + absDiff(m.Pix[o+2], want.B); d > 3 {
					t.Fatalf("%T at (%d,%d): got %v, want %v", img, x, y, m.Pix[o:o+3], want)
				}
			}
		}
		back := m.Image()
		if back.Bounds().Dx() != m.W {
			t.Fatal("Image() size")
		}
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestResize(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	m := NewRGB(40, 30)
	for i := range m.Pix {
		m.Pix[i] = byte(r.IntN(256))
	}
	same := m.Resize(image.Rect(0, 0, 40, 30), 40, 30)
	for i := range m.Pix {
		if same.Pix[i] != m.Pix[i] {
			t.Fatalf("identity resize changed pixel %d", i)
		}
	}
	flat := NewRGB(400, 300)
	for i := range flat.Pix {
		flat.Pix[i] = 77
	}
	for _, sz := range [][2]int{{320, 240}, {64, 64}, {13, 7}, {800, 600}} {
		out := flat.Resize(image.Rect(10, 10, 390, 290), sz[0], sz[1])
		for i, v := range out.Pix {
			if v != 77 {
				t.Fatalf("%v: flat image resized to %d at %d", sz, v, i)
			}
		}
	}
	if got := flat.Resize(image.Rect(500, 500, 600, 600), 4, 4); len(got.Pix) != 48 {
		t.Error("out-of-bounds source")
	}
	if h := m.Half(); h.W != 20 || h.H != 15 {
		t.Error("Half size")
	}
	if c := m.Crop(image.Rect(5, 5, 10, 8)); c.W != 5 || c.H != 3 || c.Pix[0] != m.Pix[3*(5*40+5)] {
		t.Error("Crop")
	}
}

func TestAffine(t *testing.T) {
	src := [3][2]float64{{10, 20}, {50, 22}, {30, 60}}
	dst := [3][2]float64{{38.29, 51.70}, {73.53, 51.50}, {56.03, 71.74}}
	a, ok := AffineFrom3(src, dst)
	if !ok {
		t.Fatal("degenerate")
	}
	inv, ok := a.Invert()
	if !ok {
		t.Fatal("singular")
	}
	for i := range src {
		x, y := a.Apply(src[i][0], src[i][1])
		if math.Hypot(x-dst[i][0], y-dst[i][1]) > 1e-9 {
			t.Errorf("point %d maps to (%.3f,%.3f)", i, x, y)
		}
		bx, by := inv.Apply(x, y)
		if math.Hypot(bx-src[i][0], by-src[i][1]) > 1e-9 {
			t.Errorf("inverse of point %d: (%.3f,%.3f)", i, bx, by)
		}
	}
	if _, ok := AffineFrom3([3][2]float64{{0, 0}, {1, 1}, {2, 2}}, dst); ok {
		t.Error("collinear points accepted")
	}
	// Warping with the identity copies the image; outside is black.
	m := NewRGB(8, 8)
	for i := range m.Pix {
		m.Pix[i] = byte(i)
	}
	w := m.Warp(Affine{1, 0, 0, 0, 1, 0}, 8, 8)
	for i := range m.Pix {
		if w.Pix[i] != m.Pix[i] {
			t.Fatalf("identity warp changed pixel %d", i)
		}
	}
	shifted := m.Warp(Affine{1, 0, -100, 0, 1, 0}, 4, 4)
	for _, v := range shifted.Pix {
		if v != 0 {
			t.Fatal("outside is not black")
		}
	}
}

func TestStats(t *testing.T) {
	m := NewRGB(20, 20)
	for i := range m.Pix {
		m.Pix[i] = 100
	}
	if l := m.MeanLuma(image.Rect(0, 0, 20, 20)); math.Abs(l-100) > 0.01 {
		t.Errorf("mean luma %v", l)
	}
	if m.MeanLuma(image.Rect(30, 30, 40, 40)) != 0 {
		t.Error("empty rectangle")
	}
	if v := m.LaplacianVariance(); v != 0 {
		t.Errorf("flat image sharpness %v", v)
	}
	for y := range 20 {
		for x := range 20 {
			if (x+y)%2 == 0 {
				o := 3 * (y*20 + x)
				m.Pix[o], m.Pix[o+1], m.Pix[o+2] = 255, 255, 255
			}
		}
	}
	if v := m.LaplacianVariance(); v < 1000 {
		t.Errorf("checkerboard sharpness %v", v)
	}
}
