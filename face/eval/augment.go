package eval

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"

	"yibao/face/internal/imgx"
)

// An Augment is one capture-condition change applied to a sample.
type Augment struct {
	Name  string
	Apply func(image.Image) (image.Image, error)
}

// Augments are the variants every sample is also embedded in: what a
// different camera, light or pose does to the same capture.
var Augments = []Augment{
	{"mirror", func(m image.Image) (image.Image, error) { return Mirror(m), nil }},
	{"dark0.7", func(m image.Image) (image.Image, error) { return Darken(m, 0.7), nil }},
	{"jpeg40", func(m image.Image) (image.Image, error) { return JPEGRoundTrip(m, 40) }},
	{"rot8", func(m image.Image) (image.Image, error) { return Rotate(m, 8), nil }},
}

// Mirror flips m left to right.
func Mirror(m image.Image) image.Image {
	src := imgx.FromImage(m)
	out := imgx.NewRGB(src.W, src.H)
	for y := 0; y < src.H; y++ {
		for x := 0; x < src.W; x++ {
			copy(out.Pix[3*(y*src.W+x):3*(y*src.W+x)+3], src.Pix[3*(y*src.W+src.W-1-x):])
		}
	}
	return out.Image()
}

// Darken multiplies every channel by f.
func Darken(m image.Image, f float64) image.Image {
	src := imgx.FromImage(m)
	for i, v := range src.Pix {
		src.Pix[i] = uint8(math.Min(255, float64(v)*f+0.5))
	}
	return src.Image()
}

// JPEGRoundTrip encodes m as JPEG at quality q and decodes it again.
func JPEGRoundTrip(m image.Image, q int) (image.Image, error) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: q}); err != nil {
		return nil, err
	}
	return jpeg.Decode(&buf)
}

// Rotate turns m by deg degrees (counter-clockwise) about its centre;
// uncovered corners are mid-gray.
func Rotate(m image.Image, deg float64) image.Image {
	src := imgx.FromImage(m)
	// Paint a gray frame by warping onto a gray canvas: sample with the
	// inverse rotation, then fill what fell outside.
	a := deg * math.Pi / 180
	c, s := math.Cos(a), math.Sin(a)
	cx, cy := float64(src.W-1)/2, float64(src.H-1)/2
	// inverse: output (x,y) -> input
	inv := imgx.Affine{c, -s, cx - c*cx + s*cy, s, c, cy - s*cx - c*cy}
	out := src.Warp(inv, src.W, src.H)
	for y := 0; y < src.H; y++ {
		for x := 0; x < src.W; x++ {
			sx, sy := inv.Apply(float64(x), float64(y))
			if sx < 0 || sy < 0 || sx > float64(src.W-1) || sy > float64(src.H-1) {
				o := 3 * (y*src.W + x)
				out.Pix[o], out.Pix[o+1], out.Pix[o+2] = 128, 128, 128
			}
		}
	}
	return out.Image()
}

// Place puts the part of m around r (the square of side margin × the box
// side, same centre) on a mid-gray square canvas pad times that size, and
// scales it so the box is faceWidth pixels wide. Anything outside the kept
// square is gray, so neighbouring faces in a group photo do not leak in.
func Place(m image.Image, r image.Rectangle, margin, pad float64, faceWidth int) image.Image {
	return place(imgx.FromImage(m), r.Sub(m.Bounds().Min), margin, pad, faceWidth)
}

// place is Place on a converted image (r in its coordinates).
func place(src *imgx.RGB, r image.Rectangle, margin, pad float64, faceWidth int) image.Image {
	side := float64(max(r.Dx(), r.Dy()))
	cx, cy := float64(r.Min.X+r.Max.X)/2, float64(r.Min.Y+r.Max.Y)/2
	half := side * margin / 2
	keep := image.Rect(int(cx-half), int(cy-half), int(cx+half), int(cy+half)).Intersect(image.Rect(0, 0, src.W, src.H))
	scale := float64(faceWidth) / side
	n := int(side*margin*pad*scale + 0.5)
	kw, kh := int(float64(keep.Dx())*scale+0.5), int(float64(keep.Dy())*scale+0.5)
	part := src.Resize(keep, max(kw, 1), max(kh, 1))
	out := imgx.NewRGB(n, n)
	for i := range out.Pix {
		out.Pix[i] = 128
	}
	// Where the kept square's top-left lands on the canvas (the box
	// centre goes to the canvas centre).
	ox := int(float64(n)/2 - (cx-float64(keep.Min.X))*scale + 0.5)
	oy := int(float64(n)/2 - (cy-float64(keep.Min.Y))*scale + 0.5)
	for y := 0; y < part.H; y++ {
		ty := oy + y
		if ty < 0 || ty >= n {
			continue
		}
		for x := 0; x < part.W; x++ {
			tx := ox + x
			if tx < 0 || tx >= n {
				continue
			}
			copy(out.Pix[3*(ty*n+tx):3*(ty*n+tx)+3], part.Pix[3*(y*part.W+x):])
		}
	}
	return out.Image()
}
