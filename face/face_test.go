package face

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func encodePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = uint8(i)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodeJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	m := image.NewGray(image.Rect(0, 0, w, h))
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngBomb is a valid PNG header (with a correct CRC) claiming w×h pixels,
// followed by a few bytes of data.
func pngBomb(t *testing.T, w, h uint32) []byte {
	b := encodePNG(t, 8, 8)
	// IHDR data starts at 16: width, height; its CRC covers type+data
	// (bytes 12..29) and sits at 29..33.
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// jpegBomb patches the SOF0 frame header of a small JPEG to claim w×h.
func jpegBomb(t *testing.T, w, h uint16) []byte {
	b := encodeJPEG(t, 8, 8)
	i := bytes.Index(b, []byte{0xff, 0xc0})
	if i < 0 {
		t.Fatal("no SOF0")
	}
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

func TestDecode(t *testing.T) {
	good := encodePNG(t, 200, 100)
	img, err := Decode(bytes.NewReader(good), 0)
	if err != nil || img.Bounds().Dx() != 200 {
		t.Fatalf("good PNG: %v", err)
	}
	if img, err := Decode(bytes.NewReader(encodeJPEG(t, 320, 240)), 0); err != nil || img.Bounds().Dy() != 240 {
		t.Fatalf("good JPEG: %v", err)
	}
	gif := []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")
	cases := []struct {
		name string
		data []byte
		max  int64
	}{
		{"empty", nil, 0},
		{"not an image", []byte("hello, world"), 0},
		{"gif", gif, 0},
		{"truncated png", good[:len(good)/2], 0},
		{"corrupt jpeg", append(encodeJPEG(t, 64, 64)[:40], bytes.Repeat([]byte{0x55}, 100)...), 0},
		{"png claiming 100000×100000", pngBomb(t, 100000, 100000), 0},
		{"png claiming 5000×10", pngBomb(t, 5000, 10), 0},
		{"png claiming 0×10", pngBomb(t, 0, 10), 0},
		{"jpeg claiming 60000×60000", jpegBomb(t, 60000, 60000), 0},
		{"jpeg claiming 0×0", jpegBomb(t, 0, 0), 0},
		{"over the byte limit", good, int64(len(good) - 1)},
	}
	for _, c := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Decode(bytes.NewReader(c.data), c.max)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrBadImage) {
			t.Errorf("%s: got %v, want ErrBadImage", c.name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
			t.Errorf("%s: allocated %d bytes before refusing", c.name, grew)
		}
	}
	// The default limit is MaxImageBytes.
	big := bytes.NewReader(append(good, make([]byte, MaxImageBytes)...))
	if _, err := Decode(big, 0); !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("9 MiB upload: %v", err)
	}
}

func TestCosine(t *testing.T) {
	a := []float32{1, 2, 3, 4, 5}
	b := []float32{2, 4, 6, 8, 10}
	if c := Cosine(a, b); math.Abs(float64(c)-1) > 1e-6 {
		t.Errorf("parallel: %v", c)
	}
	if c := Cosine([]float32{1, 0}, []float32{0, 1}); c != 0 {
		t.Errorf("orthogonal: %v", c)
	}
	if c := Cosine([]float32{1, 0}, []float32{-1, 0}); c != -1 {
		t.Errorf("opposite: %v", c)
	}
	if Cosine(a, a[:3]) != 0 || Cosine([]float32{0, 0}, []float32{1, 1}) != 0 || Cosine(nil, nil) != 0 {
		t.Error("degenerate inputs should give 0")
	}
	n := Normalize(append([]float32(nil), a...))
	if d := Dot(n, n); math.Abs(float64(d)-1) > 1e-6 {
		t.Errorf("normalised |v|² = %v", d)
	}
	if d, c := Dot(Normalize(append([]float32(nil), a...)), Normalize(append([]float32(nil), 5, 4, 3, 2, 1))), Cosine(a, []float32{5, 4, 3, 2, 1}); math.Abs(float64(d-c)) > 1e-6 {
		t.Errorf("Dot of normalised %v != Cosine %v", d, c)
	}
}

func TestLocate(t *testing.T) {
	t.Setenv(EnvDir, "")
	dir := t.TempDir()
	_, err := Locate(dir)
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), InstallHint) {
		t.Fatalf("empty dir: %v", err)
	}
	// A flat install: the runtime and the models side by side.
	for _, f := range []string{"libonnxruntime.so.1", "fr_detect.onnx", "fr_landmark.onnx", "fr_feature.onnx", "fr_liveness.onnx", "sample1.jpg"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Locate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Runtime != filepath.Join(dir, "libonnxruntime.so.1") || p.FaceMatch != "" || len(p.Groups) != 1 {
		t.Errorf("flat: %+v", p)
	}
	// The environment overrides the argument.
	t.Setenv(EnvDir, dir)
	if p, err := Locate("/nonexistent"); err != nil || p.Dir != dir {
		t.Errorf("env override: %+v %v", p, err)
	}
	// Ensure does not install into an explicit location.
	t.Setenv(EnvDir, t.TempDir())
	if _, err := Ensure(context.Background(), "", nil); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Ensure with an empty $%s: %v", EnvDir, err)
	}
}

func TestEnsureWithoutPackageJSON(t *testing.T) {
	t.Setenv(EnvDir, "")
	var log bytes.Buffer
	_, err := Ensure(context.Background(), t.TempDir(), &log)
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("got %v", err)
	}
	if log.Len() != 0 {
		t.Errorf("ran something: %q", log.String())
	}
}
