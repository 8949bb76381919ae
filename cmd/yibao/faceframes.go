package main

import (
	"bytes"
	"errors"
	"image"
	"io"

	"yibao/face/eval"
)

// writeBreathing writes 60 frames (two seconds at 30 fps) of img zoomed
// from 1.1 to 1.6 and back (the edges, where other people of the source
// photo were, stay cut off): on a fake camera, a face that comes closer
// and moves back again, so a liveness challenge of either kind is
// answered. The way back runs half a step apart from the way in, so no
// two frames are the same.
func writeBreathing(w io.Writer, img image.Image) error {
	const n = 60
	var header []byte
	for i := range n {
		t := float64(i) / (n / 2)
		if i >= n/2 {
			t = 2 - t - 0.5/(n/2)
		}
		var buf bytes.Buffer
		if err := eval.WriteY4M(&buf, zoomCentre(img, 1.1+0.5*t), 1); err != nil {
			return err
		}
		b := buf.Bytes()
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return errors.New("y4m: no header")
		}
		if header == nil {
			header = b[:nl+1]
			if _, err := w.Write(header); err != nil {
				return err
			}
		}
		if _, err := w.Write(b[nl+1:]); err != nil { // "FRAME\n" and the planes
			return err
		}
	}
	return nil
}

// zoomCentre magnifies the centre of img by f (nearest neighbour).
func zoomCentre(img image.Image, f float64) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(b)
	cx, cy := float64(b.Min.X+b.Dx()/2), float64(b.Min.Y+b.Dy()/2)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			out.Set(x, y, img.At(int(cx+(float64(x)-cx)/f), int(cy+(float64(y)-cy)/f)))
		}
	}
	return out
}
