// Package imgx is the small amount of image processing the face pipeline
// needs, in plain Go: packed RGB buffers, bilinear resizing and cropping,
// affine warping, luma statistics. It matches what OpenCV's resize and
// warpAffine (INTER_LINEAR, constant black border) do closely enough for the
// models, which is what the vendor's preprocessing used.
package imgx

import (
	"image"
	"image/color"
	"math"
)

// RGB is a packed 8-bit RGB image: pixel (x, y) is Pix[3*(y*W+x) : +3].
type RGB struct {
	W, H int
	Pix  []uint8
}

// NewRGB allocates a black w×h image.
func NewRGB(w, h int) *RGB { return &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)} }

// FromImage converts any image to RGB, with fast paths for the types the
// standard decoders return.
func FromImage(img image.Image) *RGB {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := NewRGB(w, h)
	switch m := img.(type) {
	case *image.YCbCr:
		if m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
			for y := 0; y < h; y++ {
				yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):]
				// chroma index of column x is (x+b.Min.X)/2 - b.Min.X/2 from crow
				crow := m.COffset(b.Min.X, b.Min.Y+y)
				cb, cr := m.Cb[crow:], m.Cr[crow:]
				dst := out.Pix[3*y*w : 3*(y+1)*w]
				x0 := b.Min.X & 1
				for x := 0; x < w; x++ {
					c := (x + x0) >> 1
					r, g, bb := color.YCbCrToRGB(yrow[x], cb[c], cr[c])
					dst[3*x], dst[3*x+1], dst[3*x+2] = r, g, bb
				}
			}
			break
		}
		for y := 0; y < h; y++ {
			o := 3 * y * w
			for x := 0; x < w; x++ {
				yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				out.Pix[o], out.Pix[o+1], out.Pix[o+2] = r, g, bb
				o += 3
			}
		}
	case *image.RGBA:
		copyRGBX(out.Pix, m.Pix, m.PixOffset(b.Min.X, b.Min.Y), m.Stride, w, h)
	case *image.NRGBA:
		copyRGBX(out.Pix, m.Pix, m.PixOffset(b.Min.X, b.Min.Y), m.Stride, w, h)
	case *image.Gray:
		for y := 0; y < h; y++ {
			s := m.PixOffset(b.Min.X, b.Min.Y+y)
			o := 3 * y * w
			for x := 0; x < w; x++ {
				v := m.Pix[s+x]
				out.Pix[o], out.Pix[o+1], out.Pix[o+2] = v, v, v
				o += 3
			}
		}
	default:
		o := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				out.Pix[o], out.Pix[o+1], out.Pix[o+2] = c.R, c.G, c.B
				o += 3
			}
		}
	}
	return out
}

// Image returns m as an *image.RGBA (a copy).
func (m *RGB) Image() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255
	}
	return out
}

// Luma of one RGB triple (BT.601), 0–255.
func Luma(r, g, b uint8) float64 { return 0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b) }

// MeanLuma is the mean luma inside r (clipped to the image), sampling at
// most about 64k pixels.
func (m *RGB) MeanLuma(r image.Rectangle) float64 {
	r = r.Intersect(image.Rect(0, 0, m.W, m.H))
	if r.Empty() {
		return 0
	}
	step := int(math.Sqrt(float64(r.Dx()*r.Dy())/65536)) + 1
	var sum float64
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y += step {
		for x := r.Min.X; x < r.Max.X; x += step {
			o := 3 * (y*m.W + x)
			sum += Luma(m.Pix[o], m.Pix[o+1], m.Pix[o+2])
			n++
		}
	}
	return sum / float64(n)
}

// Half halves m with 2×2 box averaging (odd edges dropped).
func (m *RGB) Half() *RGB {
	w, h := m.W/2, m.H/2
	out := NewRGB(w, h)
	for y := 0; y < h; y++ {
		r0 := 3 * (2 * y) * m.W
		r1 := r0 + 3*m.W
		o := 3 * y * w
		for x := 0; x < w; x++ {
			s := 6 * x
			for c := 0; c < 3; c++ {
				v := int(m.Pix[r0+s+c]) + int(m.Pix[r0+s+3+c]) + int(m.Pix[r1+s+c]) + int(m.Pix[r1+s+3+c])
				out.Pix[o+c] = uint8((v + 2) / 4)
			}
			o += 3
		}
	}
	return out
}

// Resize scales the sub-rectangle src of m to w×h with bilinear
// interpolation (OpenCV's INTER_LINEAR pixel-centre convention). When it
// shrinks by 2 or more it first halves with box averaging, so large photos
// do not alias.
func (m *RGB) Resize(src image.Rectangle, w, h int) *RGB {
	src = src.Intersect(image.Rect(0, 0, m.W, m.H))
	if src.Empty() || w <= 0 || h <= 0 {
		return NewRGB(max(w, 0), max(h, 0))
	}
	base := m
	fx := float64(src.Dx()) / float64(w)
	fy := float64(src.Dy()) / float64(h)
	if fx >= 2 && fy >= 2 && src.Dx() >= 4 && src.Dy() >= 4 {
		sub := m.Crop(src)
		for fx >= 2 && fy >= 2 && sub.W >= 4 && sub.H >= 4 {
			sub = sub.Half()
			fx, fy = fx/2, fy/2
		}
		base, src = sub, image.Rect(0, 0, sub.W, sub.H)
		fx = float64(src.Dx()) / float64(w)
		fy = float64(src.Dy()) / float64(h)
	}
	out := NewRGB(w, h)
	// Precompute horizontal taps.
	x0s := make([]int, w)
	x1s := make([]int, w)
	wxs := make([]float32, w)
	for x := 0; x < w; x++ {
		sx := (float64(x)+0.5)*fx - 0.5
		if sx < 0 {
			sx = 0
		}
		i := int(sx)
		if i >= src.Dx()-1 {
			i, sx = src.Dx()-1, float64(src.Dx()-1)
		}
		x0s[x] = 3 * (src.Min.X + i)
		x1s[x] = 3 * (src.Min.X + min(i+1, src.Dx()-1))
		wxs[x] = float32(sx - float64(i))
	}
	for y := 0; y < h; y++ {
		sy := (float64(y)+0.5)*fy - 0.5
		if sy < 0 {
			sy = 0
		}
		j := int(sy)
		if j >= src.Dy()-1 {
			j, sy = src.Dy()-1, float64(src.Dy()-1)
		}
		wy := float32(sy - float64(j))
		r0 := 3 * (src.Min.Y + j) * base.W
		r1 := 3 * (src.Min.Y + min(j+1, src.Dy()-1)) * base.W
		o := 3 * y * w
		for x := 0; x < w; x++ {
			a, b, wx := x0s[x], x1s[x], wxs[x]
			for c := 0; c < 3; c++ {
				top := float32(base.Pix[r0+a+c]) + wx*(float32(base.Pix[r0+b+c])-float32(base.Pix[r0+a+c]))
				bot := float32(base.Pix[r1+a+c]) + wx*(float32(base.Pix[r1+b+c])-float32(base.Pix[r1+a+c]))
				out.Pix[o+c] = uint8(top + wy*(bot-top) + 0.5)
			}
			o += 3
		}
	}
	return out
}

// Crop copies the sub-rectangle r (clipped) into a new image.
func (m *RGB) Crop(r image.Rectangle) *RGB {
	r = r.Intersect(image.Rect(0, 0, m.W, m.H))
	out := NewRGB(r.Dx(), r.Dy())
	for y := 0; y < r.Dy(); y++ {
		copy(out.Pix[3*y*out.W:3*(y+1)*out.W], m.Pix[3*((r.Min.Y+y)*m.W+r.Min.X):])
	}
	return out
}

// Affine is a 2×3 matrix mapping (x, y) to (A*x+B*y+C, D*x+E*y+F).
type Affine [6]float64

// Apply maps one point.
func (t Affine) Apply(x, y float64) (float64, float64) {
	return t[0]*x + t[1]*y + t[2], t[3]*x + t[4]*y + t[5]
}

// AffineFrom3 is the affine map taking the three points src to dst
// exactly (OpenCV's getAffineTransform); ok is false when src is degenerate.
func AffineFrom3(src, dst [3][2]float64) (t Affine, ok bool) {
	// Solve [x y 1] * [a d; b e; c f] = [u v] for the three pairs.
	x1, y1 := src[0][0], src[0][1]
	x2, y2 := src[1][0], src[1][1]
	x3, y3 := src[2][0], src[2][1]
	det := x1*(y2-y3) - y1*(x2-x3) + (x2*y3 - x3*y2)
	if math.Abs(det) < 1e-9 {
		return t, false
	}
	// Inverse of M = [[x1 y1 1][x2 y2 1][x3 y3 1]].
	inv := [3][3]float64{
		{(y2 - y3) / det, (y3 - y1) / det, (y1 - y2) / det},
		{(x3 - x2) / det, (x1 - x3) / det, (x2 - x1) / det},
		{(x2*y3 - x3*y2) / det, (x3*y1 - x1*y3) / det, (x1*y2 - x2*y1) / det},
	}
	for k := 0; k < 2; k++ {
		u := [3]float64{dst[0][k], dst[1][k], dst[2][k]}
		for r := 0; r < 3; r++ {
			t[3*k+r] = inv[r][0]*u[0] + inv[r][1]*u[1] + inv[r][2]*u[2]
		}
	}
	return t, true
}

// Invert returns the inverse map; ok is false if t is singular.
func (t Affine) Invert() (Affine, bool) {
	det := t[0]*t[4] - t[1]*t[3]
	if math.Abs(det) < 1e-12 {
		return Affine{}, false
	}
	a, b, d, e := t[4]/det, -t[1]/det, -t[3]/det, t[0]/det
	return Affine{a, b, -(a*t[2] + b*t[5]), d, e, -(d*t[2] + e*t[5])}, true
}

// Warp renders the w×h image whose pixel (x, y) is m sampled bilinearly at
// inv(x, y); inv maps output to input coordinates. Outside m is black.
func (m *RGB) Warp(inv Affine, w, h int) *RGB {
	out := NewRGB(w, h)
	for y := 0; y < h; y++ {
		o := 3 * y * w
		for x := 0; x < w; x++ {
			sx, sy := inv.Apply(float64(x), float64(y))
			m.sample(sx, sy, out.Pix[o:o+3])
			o += 3
		}
	}
	return out
}

// sample writes the bilinear sample at (sx, sy) into px; pixels outside
// the image count as black.
func (m *RGB) sample(sx, sy float64, px []uint8) {
	x0 := int(math.Floor(sx))
	y0 := int(math.Floor(sy))
	fx := sx - float64(x0)
	fy := sy - float64(y0)
	if x0 < -1 || y0 < -1 || x0 >= m.W || y0 >= m.H {
		px[0], px[1], px[2] = 0, 0, 0
		return
	}
	var acc [3]float64
	for dy := 0; dy < 2; dy++ {
		yy := y0 + dy
		wy := fy
		if dy == 0 {
			wy = 1 - fy
		}
		if yy < 0 || yy >= m.H || wy == 0 {
			continue
		}
		for dx := 0; dx < 2; dx++ {
			xx := x0 + dx
			wx := fx
			if dx == 0 {
				wx = 1 - fx
			}
			if xx < 0 || xx >= m.W || wx == 0 {
				continue
			}
			o := 3 * (yy*m.W + xx)
			for c := 0; c < 3; c++ {
				acc[c] += wx * wy * float64(m.Pix[o+c])
			}
		}
	}
	for c := 0; c < 3; c++ {
		px[c] = uint8(math.Min(255, acc[c]+0.5))
	}
}

// LaplacianVariance is the variance of the 4-neighbour Laplacian of m's
// luma: a focus measure (blurred faces score low).
func (m *RGB) LaplacianVariance() float64 {
	if m.W < 3 || m.H < 3 {
		return 0
	}
	g := make([]float64, m.W*m.H)
	for i := range g {
		g[i] = Luma(m.Pix[3*i], m.Pix[3*i+1], m.Pix[3*i+2])
	}
	var sum, sq float64
	n := 0
	for y := 1; y < m.H-1; y++ {
		for x := 1; x < m.W-1; x++ {
			i := y*m.W + x
			l := g[i-1] + g[i+1] + g[i-m.W] + g[i+m.W] - 4*g[i]
			sum += l
			sq += l * l
			n++
		}
	}
	mean := sum / float64(n)
	return sq/float64(n) - mean*mean
}

// copyRGBX copies w×h pixels of 4 bytes (R, G, B, and alpha, which is
// dropped) starting at start with the given stride into packed RGB.
func copyRGBX(dst, src []byte, start, stride, w, h int) {
	for y := 0; y < h; y++ {
		s := start + y*stride
		o := 3 * y * w
		for x := 0; x < w; x++ {
			dst[o], dst[o+1], dst[o+2] = src[s], src[s+1], src[s+2]
			s += 4
			o += 3
		}
	}
}
