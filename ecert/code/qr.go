package code

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"strings"

	"rsc.io/qr"
)

// The code's text is Prefix + Base45, all in the QR alphanumeric
// alphabet, so the symbol uses alphanumeric mode (5.5 bits a character):
// a 226-byte code is 343 characters, a version-11 symbol at level M.

// PNG renders the text as a QR code PNG (level M, 4-module quiet zone).
func PNG(text string) ([]byte, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return nil, fmt.Errorf("code: QR: %w", err)
	}
	// Draw the modules ourselves (8-bit grey, 6 px a module, 4-module
	// quiet zone): the library's own image does not honour its scale.
	const scale, quiet = 6, 4
	n := (c.Size + 2*quiet) * scale
	g := image.NewGray(image.Rect(0, 0, n, n))
	draw.Draw(g, g.Bounds(), image.White, image.Point{}, draw.Src)
	for y := 0; y < c.Size; y++ {
		for x := 0; x < c.Size; x++ {
			if c.Black(x, y) {
				r := image.Rect((x+quiet)*scale, (y+quiet)*scale, (x+quiet+1)*scale, (y+quiet+1)*scale)
				draw.Draw(g, r, image.Black, image.Point{}, draw.Src)
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, g); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SVG renders the text as a scalable QR code: one path, dark modules on a
// white background, a 4-module quiet zone.
func SVG(text string) (string, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", fmt.Errorf("code: QR: %w", err)
	}
	n := c.Size + 8
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, n, n)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y := 0; y < c.Size; y++ {
		for x := 0; x < c.Size; x++ {
			if c.Black(x, y) {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+4, y+4)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String(), nil
}
