package eval

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"io"
	"math"
	"path/filepath"
	"strings"

	"yibao/face"
	"yibao/face/internal/imgx"
)

// Frame sizes of the fake camera.
const (
	FrameW = 640
	FrameH = 480
)

// Person is a demo identity for browser tests: a photo to enrol and a
// camera frame of the same face.
type Person struct {
	Name  string      // where it comes from, e.g. "face-api demo/sample4.jpg, face 2 from the left"
	Photo image.Image // enrolment photo: 480×480, face about 200 px wide, natural surroundings
	Frame image.Image // 640×480 camera frame: mirrored, a little darker, face about 220 px wide
}

// The demo persons, chosen because they separate reliably through the whole
// pipeline, including a JPEG round trip (see TestDemoPersons):
// the enrolled person is the second face from the left in face-api's
// demo/sample4.jpg; the other person is the rightmost face in
// demo/sample1.jpg.
var (
	enrolledRef = personRef{"sample6.jpg", 3}
	otherRef    = personRef{"sample3.jpg", 1}
)

type personRef struct {
	file string
	nth  int // 1-based, faces ordered left to right
}

// DemoPersons returns the enrolled and the other demo person.
func DemoPersons(ctx context.Context, det face.Detector, paths face.Paths) (enrolled, other Person, err error) {
	if enrolled, err = demoPerson(ctx, det, paths, enrolledRef); err != nil {
		return
	}
	other, err = demoPerson(ctx, det, paths, otherRef)
	return
}

func demoPerson(ctx context.Context, det face.Detector, paths face.Paths, ref personRef) (Person, error) {
	var file string
	for _, g := range paths.Groups {
		if filepath.Base(g) == ref.file {
			file = g
		}
	}
	if file == "" {
		return Person{}, fmt.Errorf("%w (run %q): %s is missing", face.ErrNotInstalled, face.InstallHint, ref.file)
	}
	img, err := load(file)
	if err != nil {
		return Person{}, err
	}
	ds, err := det.Detect(ctx, img)
	if err != nil {
		return Person{}, err
	}
	if len(ds) < ref.nth {
		return Person{}, fmt.Errorf("eval: %s: found %d faces, want at least %d", ref.file, len(ds), ref.nth)
	}
	sortLeftToRight(ds)
	box := ds[ref.nth-1].Box
	var others []image.Rectangle
	for i, d := range ds {
		if i != ref.nth-1 {
			others = append(others, d.Box)
		}
	}
	src := imgx.FromImage(img)
	box = box.Sub(img.Bounds().Min)
	for i := range others {
		others[i] = others[i].Sub(img.Bounds().Min)
	}
	photo := portrait(src, box, others, 480, 480, 200, false, 1)
	frame := portrait(src, box, others, FrameW, FrameH, 220, true, 0.85)
	return Person{
		Name:  fmt.Sprintf("face-api demo/%s, face %d from the left", ref.file, ref.nth),
		Photo: photo,
		Frame: frame,
	}, nil
}

func sortLeftToRight(ds []face.Detection) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j].Box.Min.X < ds[j-1].Box.Min.X; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

// Portrait renders a w×h picture of the face in box (from a larger photo)
// with the face faceWidth pixels wide, centred a little above the middle.
// Other faces of the photo (others) are blurred away, as a portrait
// camera would, so the picture holds exactly one face; the surroundings
// stay natural so passive liveness sees a photo-like scene. mirror flips
// it, gain scales brightness.
func Portrait(img image.Image, box image.Rectangle, others []image.Rectangle, w, h, faceWidth int, mirror bool, gain float64) image.Image {
	o := img.Bounds().Min
	shifted := make([]image.Rectangle, len(others))
	for i, r := range others {
		shifted[i] = r.Sub(o)
	}
	return portrait(imgx.FromImage(img), box.Sub(o), shifted, w, h, faceWidth, mirror, gain)
}

// portrait is Portrait on a converted image (rectangles in its
// coordinates).
func portrait(src *imgx.RGB, box image.Rectangle, others []image.Rectangle, w, h, faceWidth int, mirror bool, gain float64) image.Image {
	scale := float64(faceWidth) / float64(box.Dx())
	cx, cy := float64(box.Min.X+box.Max.X)/2, float64(box.Min.Y+box.Max.Y)/2
	// output (x, y) → source
	ox, oy := cx-float64(w)/2/scale, cy-float64(h)*0.45/scale
	inv := imgx.Affine{1 / scale, 0, ox, 0, 1 / scale, oy}
	var sharp *imgx.RGB
	if scale < 0.75 {
		small := src.Resize(image.Rect(0, 0, src.W, src.H), int(float64(src.W)*scale+0.5), int(float64(src.H)*scale+0.5))
		sharp = small.Warp(imgx.Affine{1, 0, ox * scale, 0, 1, oy * scale}, w, h)
	} else {
		sharp = src.Warp(inv, w, h)
	}
	// Blur: shrink 16× and grow back.
	blurred := sharp.Resize(image.Rect(0, 0, w, h), max(w/16, 1), max(h/16, 1)).Resize(image.Rect(0, 0, max(w/16, 1), max(h/16, 1)), w, h)
	out := imgx.NewRGB(w, h)
	// Keep an ellipse around the face sharp, feathered; blur the rest, and
	// blur any other face fully.
	fx, fy := float64(w)/2, float64(h)*0.45
	rx, ry := float64(faceWidth)*1.1, float64(faceWidth)*1.4
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			d := math.Hypot((float64(x)-fx)/rx, (float64(y)-fy)/ry)
			a := math.Max(0, math.Min(1, (1.25-d)/0.35)) // 1 inside, 0 outside
			sx, sy := inv.Apply(float64(x), float64(y))
			for _, o := range others {
				if (image.Point{int(sx), int(sy)}).In(o.Inset(-o.Dx() / 4)) {
					a = 0
				}
			}
			o := 3 * (y*w + x)
			for c := 0; c < 3; c++ {
				v := a*float64(sharp.Pix[o+c]) + (1-a)*float64(blurred.Pix[o+c])
				out.Pix[o+c] = uint8(math.Min(255, v*gain+0.5))
			}
		}
	}
	if mirror {
		for y := 0; y < h; y++ {
			row := out.Pix[3*y*w : 3*(y+1)*w]
			for i, j := 0, w-1; i < j; i, j = i+1, j-1 {
				for c := 0; c < 3; c++ {
					row[3*i+c], row[3*j+c] = row[3*j+c], row[3*i+c]
				}
			}
		}
	}
	return out.Image()
}

// WriteY4M writes n identical frames of img, resized to FrameW×FrameH if it
// is not already, as a YUV4MPEG2 stream (4:2:0, BT.601 limited range, 30
// fps): the format Chromium's --use-file-for-fake-video-capture plays in a
// loop.
func WriteY4M(w io.Writer, img image.Image, n int) error {
	if n <= 0 {
		n = 1
	}
	m := imgx.FromImage(img)
	if m.W != FrameW || m.H != FrameH {
		m = m.Resize(image.Rect(0, 0, m.W, m.H), FrameW, FrameH)
	}
	yp, up, vp := toI420(m)
	bw := bufio.NewWriterSize(w, 1<<16)
	fmt.Fprintf(bw, "YUV4MPEG2 W%d H%d F30:1 Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\n", FrameW, FrameH)
	for range n {
		bw.WriteString("FRAME\n")
		bw.Write(yp)
		bw.Write(up)
		bw.Write(vp)
	}
	return bw.Flush()
}

// ReadY4MFrame decodes the first frame of a YUV4MPEG2 4:2:0 stream written
// by WriteY4M (limited range, expanded to the full range image.YCbCr
// expects), for tests.
func ReadY4MFrame(r io.Reader) (image.Image, error) {
	br := bufio.NewReader(r)
	header, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	var w, h int
	for _, f := range strings.Fields(header) {
		switch f[0] {
		case 'W':
			fmt.Sscan(f[1:], &w)
		case 'H':
			fmt.Sscan(f[1:], &h)
		}
	}
	if !strings.HasPrefix(header, "YUV4MPEG2 ") || w <= 0 || h <= 0 || w > 8192 || h > 8192 {
		return nil, fmt.Errorf("eval: not a YUV4MPEG2 stream: %q", strings.TrimSpace(header))
	}
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "FRAME") {
		return nil, fmt.Errorf("eval: no FRAME: %v", err)
	}
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for i, p := range [][]byte{img.Y, img.Cb, img.Cr} {
		if _, err := io.ReadFull(br, p); err != nil {
			return nil, err
		}
		lo, span := 16.0, 219.0
		if i > 0 {
			lo, span = 128-112, 224
		}
		for k, v := range p {
			p[k] = byte(math.Max(0, math.Min(255, math.Round((float64(v)-lo)*255/span))))
		}
	}
	return img, nil
}

func toI420(m *imgx.RGB) (y, u, v []byte) {
	w, h := m.W, m.H
	cw, ch := (w+1)/2, (h+1)/2
	y = make([]byte, w*h)
	u = make([]byte, cw*ch)
	v = make([]byte, cw*ch)
	clamp := func(f float64) byte { return byte(math.Max(0, math.Min(255, math.Round(f)))) }
	for j := 0; j < h; j++ {
		for i := 0; i < w; i++ {
			o := 3 * (j*w + i)
			y[j*w+i] = clamp(16 + imgx.Luma(m.Pix[o], m.Pix[o+1], m.Pix[o+2])*219/255)
		}
	}
	for j := 0; j < ch; j++ {
		for i := 0; i < cw; i++ {
			var r, g, b, n float64
			for dy := 0; dy < 2; dy++ {
				for dx := 0; dx < 2; dx++ {
					x, yy := 2*i+dx, 2*j+dy
					if x >= w || yy >= h {
						continue
					}
					o := 3 * (yy*w + x)
					r += float64(m.Pix[o])
					g += float64(m.Pix[o+1])
					b += float64(m.Pix[o+2])
					n++
				}
			}
			r, g, b = r/n, g/n, b/n
			u[j*cw+i] = clamp((-0.168736*r-0.331264*g+0.5*b)*224/255 + 128)
			v[j*cw+i] = clamp((0.5*r-0.418688*g-0.081312*b)*224/255 + 128)
		}
	}
	return y, u, v
}
