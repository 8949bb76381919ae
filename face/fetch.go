package face

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Paths are the files the bundled embedder and its calibration need. They
// come from npm packages pinned in third_party/face/package-lock.json:
// onnxruntime-node (the ONNX Runtime shared library),
// faceplugin-face-recognition-js (the models), @vladmandic/human and
// @vladmandic/face-api (test images).
type Paths struct {
	Dir      string // the directory they were found under
	Runtime  string // libonnxruntime.so.1
	Detect   string // fr_detect.onnx: UltraFace-style detector, 320×240
	Landmark string // fr_landmark.onnx: 68 points on a 64×64 gray crop
	Feature  string // fr_feature.onnx: 512-D ArcFace-style embedding of a 112×112 aligned face
	Liveness string // fr_liveness.onnx: passive anti-spoofing, 128×128, 3 classes
	// Test images (empty in a flat install that has only the models):
	FaceMatch string   // human's screenshot-facematch.jpg: many crops of one man, and others
	Groups    []string // face-api's demo/sample*.jpg group photos
}

// EnvDir names the environment variable that overrides where the face
// files are looked for: either a directory laid out like third_party/face
// (with node_modules inside) or a flat directory holding
// libonnxruntime.so.1 and the fr_*.onnx files.
const EnvDir = "YIBAO_FACE_DIR"

// InstallHint is the command that installs the files.
const InstallHint = "cd third_party/face && npm ci"

// Locate finds the runtime and the models under dir (the third_party/face
// directory, or a flat one). $YIBAO_FACE_DIR overrides dir; an empty dir
// means DefaultDir(). A missing file gives an error wrapping
// ErrNotInstalled that says how to install them.
func Locate(dir string) (Paths, error) {
	if env := os.Getenv(EnvDir); env != "" {
		dir = env
	}
	if dir == "" {
		dir = DefaultDir()
	}
	if dir == "" {
		return Paths{}, notInstalled("third_party/face not found from the working directory; set " + EnvDir)
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		dir = abs
	}
	nm := filepath.Join(dir, "node_modules")
	layouts := []Paths{
		{
			Dir:       dir,
			Runtime:   filepath.Join(nm, "onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"),
			Detect:    filepath.Join(nm, "faceplugin-face-recognition-js/model/fr_detect.onnx"),
			Landmark:  filepath.Join(nm, "faceplugin-face-recognition-js/model/fr_landmark.onnx"),
			Feature:   filepath.Join(nm, "faceplugin-face-recognition-js/model/fr_feature.onnx"),
			Liveness:  filepath.Join(nm, "faceplugin-face-recognition-js/model/fr_liveness.onnx"),
			FaceMatch: filepath.Join(nm, "@vladmandic/human/assets/screenshot-facematch.jpg"),
		},
		{
			Dir:       dir,
			Runtime:   filepath.Join(dir, "libonnxruntime.so.1"),
			Detect:    filepath.Join(dir, "fr_detect.onnx"),
			Landmark:  filepath.Join(dir, "fr_landmark.onnx"),
			Feature:   filepath.Join(dir, "fr_feature.onnx"),
			Liveness:  filepath.Join(dir, "fr_liveness.onnx"),
			FaceMatch: filepath.Join(dir, "screenshot-facematch.jpg"),
		},
	}
	var missing string
	for i, p := range layouts {
		if m := firstMissing(p.Runtime, p.Detect, p.Landmark, p.Feature, p.Liveness); m != "" {
			if i == 0 {
				missing = m
			}
			continue
		}
		if !exists(p.FaceMatch) {
			p.FaceMatch = ""
		}
		groupDir := filepath.Join(nm, "@vladmandic/face-api/demo")
		if i == 1 {
			groupDir = dir
		}
		p.Groups, _ = filepath.Glob(filepath.Join(groupDir, "sample[0-9].jpg"))
		return p, nil
	}
	return Paths{}, notInstalled(missing + " is missing")
}

func notInstalled(why string) error {
	return fmt.Errorf("%w (run %q): %s", ErrNotInstalled, InstallHint, why)
}

func firstMissing(files ...string) string {
	for _, f := range files {
		if !exists(f) {
			return f
		}
	}
	return ""
}

func exists(f string) bool {
	st, err := os.Stat(f)
	return err == nil && st.Mode().IsRegular()
}

// DefaultDir is third_party/face in the nearest enclosing directory that
// has one, starting from the working directory, then from the executable's
// directory; "" if there is none.
func DefaultDir() string {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, d := range starts {
		for {
			c := filepath.Join(d, "third_party", "face")
			if exists(filepath.Join(c, "package.json")) {
				return c
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return ""
}

// Ensure returns the face files, installing them first with
// `npm ci --ignore-scripts --no-audit --no-fund` in dir (third_party/face;
// "" for DefaultDir()) when they are missing and npm is on the PATH. npm's
// output goes to progress. Concurrent callers, in this process or others,
// wait for one install. Without npm, or if the install fails, the error
// wraps ErrNotInstalled and says what to run.
func Ensure(ctx context.Context, dir string, progress io.Writer) (Paths, error) {
	if progress == nil {
		progress = io.Discard
	}
	p, err := Locate(dir)
	if err == nil {
		return p, nil
	}
	if os.Getenv(EnvDir) != "" {
		return Paths{}, err // an explicit location is not ours to install into
	}
	if dir == "" {
		dir = DefaultDir()
	}
	if dir == "" || !exists(filepath.Join(dir, "package.json")) {
		return Paths{}, err
	}
	npm, lookErr := exec.LookPath("npm")
	if lookErr != nil {
		return Paths{}, notInstalled("npm is not on the PATH")
	}
	unlock, lockErr := lockDir(filepath.Join(dir, ".install.lock"))
	if lockErr != nil {
		return Paths{}, fmt.Errorf("face: lock %s: %w", dir, lockErr)
	}
	defer unlock()
	if p, err := Locate(dir); err == nil { // another process installed while we waited
		return p, nil
	}
	fmt.Fprintf(progress, "face: installing models and ONNX Runtime (npm ci in %s, about 190 MB to download, 400 MB on disk)…\n", dir)
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = progress, progress
	if runErr := cmd.Run(); runErr != nil {
		if ctx.Err() != nil {
			return Paths{}, ctx.Err()
		}
		return Paths{}, errors.Join(notInstalled("npm ci failed"), runErr)
	}
	p, err = Locate(dir)
	if err == nil {
		fmt.Fprintf(progress, "face: installed under %s\n", p.Dir)
	}
	return p, err
}
