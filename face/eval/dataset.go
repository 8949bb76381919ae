// Package eval calibrates a face.Embedder on a labelled image set built
// from pictures that npm packages ship, and makes fake-camera files for
// browser tests.
//
// The set:
//   - @vladmandic/human's assets/screenshot-facematch.jpg: a face-matching
//     demo whose grid of 6×18 crops (about 85 px each) begins with 18
//     photos of one man, taken on different occasions (the first row),
//     followed by about 90 other people. Crops are found by running the
//     detector over the screenshot and are labelled by grid cell (see
//     manRow and ambiguous).
//   - @vladmandic/face-api's demo/sample1–6.jpg: group photos, 22 faces.
//   - Augmentations of every face: mirror, darken ×0.7, JPEG quality 40,
//     rotation by 8°.
//
// Genuine pairs are two different photos of the man, or a face and an
// augmentation of it. Impostor pairs are only those whose labels are
// certain: the man against everybody else, and two faces in the same group
// photo. Other people could appear more than once across the sources, so
// pairs between them are not used.
package eval

import (
	"context"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"yibao/face"
	"yibao/face/internal/imgx"
)

// Sample is one face prepared for embedding: the face alone on a gray
// canvas, large enough for the quality gates.
type Sample struct {
	Name   string // e.g. "facematch r0c3", "sample2 #1"
	Person string // identity label: Man for the man, otherwise unique per face
	Group  string // the group photo it comes from ("" for facematch crops)
	Source image.Rectangle
	Img    image.Image
}

// Man is the Person label of the man in the facematch screenshot's first
// row.
const Man = "man"

// The facematch screenshot's grid of extracted faces (1920×954): 18
// columns of 1920/18 px from x = 0, 6 rows of about 111.8 px from y = 283.
// Everything above is the demo's header (the selected face and thumbnails
// of the source photos) and is skipped.
const (
	gridTop  = 283.0
	gridRows = 6
	gridCols = 18
	cellW    = 1920.0 / gridCols
	cellH    = (954.0 - gridTop) / gridRows
	manRow   = 0 // the first row: 18 photos of the same man
)

// ambiguous are cells (row, column) left out of every pair: men who might
// be the man of the first row (sunglasses, blur, similar build), judged by
// eye. Every other cell shows somebody clearly different from him (mostly
// women).
var ambiguous = map[[2]int]bool{
	{1, 0}: true, {1, 1}: true, {1, 2}: true, {1, 3}: true, {1, 4}: true, {1, 8}: true,
	{1, 13}: true, {1, 15}: true, {1, 16}: true, {2, 0}: true, {2, 4}: true, {3, 1}: true, {3, 4}: true,
}

// FaceWidth is the width, in pixels, that every sample's face is scaled to.
const FaceWidth = 160

// Samples detects and labels the faces of the calibration set. progress
// gets one line per source image.
func Samples(ctx context.Context, det face.Detector, paths face.Paths, progress io.Writer) ([]Sample, error) {
	if progress == nil {
		progress = io.Discard
	}
	if paths.FaceMatch == "" || len(paths.Groups) == 0 {
		return nil, fmt.Errorf("%w (run %q): the test images are missing", face.ErrNotInstalled, face.InstallHint)
	}
	var out []Sample
	fm, err := load(paths.FaceMatch)
	if err != nil {
		return nil, err
	}
	dets, err := DetectTiled(ctx, det, fm, 640, 480)
	if err != nil {
		return nil, err
	}
	fmRGB := imgx.FromImage(fm)
	fmOrigin := fm.Bounds().Min
	seen := map[[2]int]bool{}
	skipped := 0
	for _, d := range dets {
		cx := float64(d.Box.Min.X+d.Box.Max.X) / 2
		cy := float64(d.Box.Min.Y+d.Box.Max.Y) / 2
		if cy < gridTop {
			continue
		}
		row, col := int((cy-gridTop)/cellH), int(cx/cellW)
		cell := [2]int{row, col}
		if row >= gridRows || col >= gridCols || seen[cell] {
			continue
		}
		seen[cell] = true
		if ambiguous[cell] {
			skipped++
			continue
		}
		person := fmt.Sprintf("facematch r%dc%d", row, col)
		if row == manRow {
			person = Man
		}
		// Keep the face and a little around it, never past its cell.
		cellRect := image.Rect(int(float64(col)*cellW), int(gridTop+float64(row)*cellH),
			int(float64(col+1)*cellW), int(gridTop+float64(row+1)*cellH))
		box := d.Box.Intersect(cellRect)
		out = append(out, Sample{
			Name:   fmt.Sprintf("facematch r%dc%d", row, col),
			Person: person,
			Source: box,
			Img:    placeWithin(fmRGB, box.Sub(fmOrigin), cellRect.Sub(fmOrigin)),
		})
	}
	fmt.Fprintf(progress, "facematch screenshot: %d crops in the grid (%d ambiguous left out), %d of the man\n",
		len(seen), skipped, countPerson(out, Man))
	for _, g := range paths.Groups {
		img, err := load(g)
		if err != nil {
			return nil, err
		}
		ds, err := det.Detect(ctx, img)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(filepath.Base(g), filepath.Ext(g))
		rgb := imgx.FromImage(img)
		sort.Slice(ds, func(i, j int) bool { return ds[i].Box.Min.X < ds[j].Box.Min.X })
		for i, d := range ds {
			out = append(out, Sample{
				Name:   fmt.Sprintf("%s #%d", name, i+1),
				Person: fmt.Sprintf("%s #%d", name, i+1),
				Group:  name,
				Source: d.Box,
				Img:    place(rgb, d.Box.Sub(img.Bounds().Min), 1.5, 2, FaceWidth),
			})
		}
		fmt.Fprintf(progress, "%s: %d faces\n", filepath.Base(g), len(ds))
	}
	return out, nil
}

// placeWithin is Place for a crop that must not leave its cell: the kept
// margin is the largest (up to 1.5×) that stays inside cell.
func placeWithin(m *imgx.RGB, box, cell image.Rectangle) image.Image {
	side := float64(max(box.Dx(), box.Dy()))
	cx, cy := float64(box.Min.X+box.Max.X)/2, float64(box.Min.Y+box.Max.Y)/2
	room := math.Min(math.Min(cx-float64(cell.Min.X), float64(cell.Max.X)-cx), math.Min(cy-float64(cell.Min.Y), float64(cell.Max.Y)-cy))
	margin := math.Max(1, math.Min(1.5, 2*room/side))
	return place(m, box, margin, 2.2/margin, FaceWidth)
}

func countPerson(s []Sample, p string) int {
	n := 0
	for _, x := range s {
		if x.Person == p {
			n++
		}
	}
	return n
}

func load(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := face.Decode(f, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// DetectTiled runs det over the whole image and over overlapping tiles of
// w×h (half-tile stride), so small faces in a large picture are found at a
// workable scale, and merges the boxes (IoU > 0.3: keep the higher score).
func DetectTiled(ctx context.Context, det face.Detector, img image.Image, w, h int) ([]face.Detection, error) {
	b := img.Bounds()
	all, err := det.Detect(ctx, img)
	if err != nil {
		return nil, err
	}
	type sub interface {
		SubImage(image.Rectangle) image.Image
	}
	s, ok := img.(sub)
	if ok {
		for y := b.Min.Y; y < b.Max.Y; y += h / 2 {
			for x := b.Min.X; x < b.Max.X; x += w / 2 {
				r := image.Rect(x, y, x+w, y+h).Intersect(b)
				if r.Dx() < w/2 || r.Dy() < h/2 {
					continue
				}
				ds, err := det.Detect(ctx, s.SubImage(r))
				if err != nil {
					return nil, err
				}
				for _, d := range ds {
					// A box touching an inner tile edge may be a cut face;
					// a neighbouring tile sees it whole.
					if d.Box.Min.X <= r.Min.X+1 && r.Min.X > b.Min.X || d.Box.Min.Y <= r.Min.Y+1 && r.Min.Y > b.Min.Y ||
						d.Box.Max.X >= r.Max.X-2 && r.Max.X < b.Max.X || d.Box.Max.Y >= r.Max.Y-2 && r.Max.Y < b.Max.Y {
						continue
					}
					all = append(all, d)
				}
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Score > all[j].Score })
	var kept []face.Detection
	for _, d := range all {
		dup := false
		for _, k := range kept {
			if iou(d.Box, k.Box) > 0.3 {
				dup = true
				break
			}
		}
		if !dup {
			kept = append(kept, d)
		}
	}
	return kept, nil
}

func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	i := float64(in.Dx() * in.Dy())
	return i / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - i)
}
