package face

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
)

// Decode reads one JPEG or PNG image of at most max bytes (MaxImageBytes if
// max <= 0) from r. The header is checked before any pixel is decoded: a
// side of zero or above MaxImageSide is refused without allocating the
// image, so a small file claiming huge dimensions (a decompression bomb)
// costs nothing. Every failure wraps ErrBadImage.
//
// EXIF orientation is not applied: camera frames drawn from a canvas carry
// none.
func Decode(r io.Reader, max int64) (image.Image, error) {
	if max <= 0 {
		max = MaxImageBytes
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %v", ErrBadImage, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadImage, max)
	}
	return DecodeBytes(data)
}

// DecodeBytes is Decode on a buffer already in memory (its size is the
// caller's business).
func DecodeBytes(data []byte) (image.Image, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadImage)
	}
	var (
		cfg    image.Config
		err    error
		decode func(io.Reader) (image.Image, error)
	)
	switch {
	case bytes.HasPrefix(data, []byte("\xff\xd8")):
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(data))
		decode = jpeg.Decode
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		cfg, err = png.DecodeConfig(bytes.NewReader(data))
		decode = png.Decode
	default:
		return nil, fmt.Errorf("%w: not JPEG or PNG", ErrBadImage)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%w: %d×%d pixels", ErrBadImage, cfg.Width, cfg.Height)
	}
	if cfg.Width > MaxImageSide || cfg.Height > MaxImageSide {
		return nil, fmt.Errorf("%w: %d×%d pixels, more than %d on a side", ErrBadImage, cfg.Width, cfg.Height, MaxImageSide)
	}
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	return img, nil
}
