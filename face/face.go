// Package face is the face-recognition core of face payment: the Embedder
// contract that turns one camera frame into a template, the quality gates and
// their errors, safe image decoding, and where the models live on disk.
//
// It has no cgo and no model: yibao/face/onnx implements Embedder with ONNX
// Runtime, yibao/face/gallery searches templates 1:N, yibao/face/eval
// calibrates thresholds. Services depend on this package only, so a licensed
// model can replace the bundled one behind the same interface; templates are
// tagged with Embedder.Space so vectors of different models are never
// compared.
package face

import (
	"context"
	"errors"
	"image"
	"math"
)

// Embedder turns an image holding exactly one face into a template.
// Implementations are safe for concurrent use.
type Embedder interface {
	// Space names the embedding space, versioned: two vectors are
	// comparable only if they come from the same space. A service stores it
	// next to every template and refuses to compare across spaces.
	Space() string
	// Embed detects the one face in img, checks its quality and returns its
	// template. The errors a caller can act on are the Err* values of this
	// package (test with errors.Is).
	Embed(ctx context.Context, img image.Image) (*Face, error)
}

// Face is one embedded face.
type Face struct {
	// Vector is the template, L2-normalised, so the cosine of two templates
	// is their dot product.
	Vector []float32
	// Box is the face in the image's coordinates (square, side = the
	// detector's box height, clipped to the image).
	Box image.Rectangle
	// Quality describes the capture; the gates in this package have already
	// been applied, a service may be stricter.
	Quality Quality
	// Liveness is the model's probability that the face is a live person in
	// front of the camera rather than a photo or a screen, in [0, 1]; -1 if
	// the embedder has no liveness model. A passive score only: combine it
	// with an active challenge.
	Liveness float64
}

// Quality is measured on the detected face.
type Quality struct {
	Width      float64 // face box width in pixels
	Brightness float64 // mean luma (0–255) inside the face box
	Sharpness  float64 // variance of the Laplacian of the face's luma, resampled to 112 px; below ~20 is blurred
	DetScore   float64 // the detector's confidence, 0–1
}

// The quality gates. A frame that fails one is refused with the matching
// error before any template is made.
const (
	MinFaceWidth  = 80      // px: narrower faces carry too little detail
	MinImageSide  = 160     // px: the shorter side of the image
	MinBrightness = 40      // mean luma 0–255, of the image and of the face
	MaxImageBytes = 8 << 20 // 8 MiB upload
	MaxImageSide  = 4096    // px, either side
)

// Errors with stable meanings; a service maps each to an API error.
var (
	ErrNoFace    = errors.New("face: no face found")
	ErrManyFaces = errors.New("face: more than one face in the image")
	ErrTooSmall  = errors.New("face: face or image too small")
	ErrTooDark   = errors.New("face: image too dark")
	ErrBadImage  = errors.New("face: not a valid JPEG or PNG image within the size limits")
	// ErrNotInstalled is returned when the models or the runtime are
	// missing: face payment is off, everything else keeps working.
	ErrNotInstalled = errors.New("face: models not installed")
)

// Cosine is the cosine similarity of a and b (1 same direction, 0
// orthogonal). For L2-normalised templates it is their dot product. It
// returns 0 for vectors of different lengths or zero norm.
func Cosine(a, b []float32) float32 {
	if len(a) != len(b) || len(a) == 0 {
		return 0
	}
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return float32(dot / math.Sqrt(na*nb))
}

// Dot is the dot product of two vectors (over the shorter length): the
// cosine of two L2-normalised templates, without the norms.
func Dot(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	for len(a) >= 4 && len(b) >= 4 {
		x, y := (*[4]float32)(a[:4]), (*[4]float32)(b[:4])
		s0 += x[0] * y[0]
		s1 += x[1] * y[1]
		s2 += x[2] * y[2]
		s3 += x[3] * y[3]
		a, b = a[4:], b[4:]
	}
	for i := range min(len(a), len(b)) {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// Normalize scales v to unit L2 norm in place and returns it; a zero
// vector is left as is.
func Normalize(v []float32) []float32 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 {
		return v
	}
	s := float32(1 / math.Sqrt(n))
	for i := range v {
		v[i] *= s
	}
	return v
}

// Detection is one face a detector found, without any quality gate.
type Detection struct {
	Box   image.Rectangle // square, in the image's coordinates, clipped to it
	Score float64         // the detector's confidence, 0–1
}

// Detector is implemented by embedders that can also list every face in an
// image (for capture guidance and calibration).
type Detector interface {
	// Detect returns every face in img, largest first.
	Detect(ctx context.Context, img image.Image) ([]Detection, error)
}
