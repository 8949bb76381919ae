//go:build !cgo

// Package onnx is the bundled face.Embedder (ONNX Runtime through cgo).
// This build has no cgo, so New always fails and face payment stays off.
package onnx

import (
	"context"
	"errors"
	"fmt"
	"image"

	"yibao/face"
)

// Space is the embedding space of this model and pipeline.
const Space = "faceplugin-arcface-512/v1"

// Dim is the template length.
const Dim = 512

// Options tune an Embedder.
type Options struct {
	Pipelines, Threads, MinFaceWidth int
	ScoreThreshold                   float64
}

// Embedder is unavailable without cgo.
type Embedder struct{}

var errNoCgo = errors.New("face/onnx: this binary was built without cgo (CGO_ENABLED=0); face payment needs cgo for ONNX Runtime")

// New fails: no cgo.
func New(paths face.Paths) (*Embedder, error) { return NewWithOptions(paths, Options{}) }

// NewWithOptions fails: no cgo.
func NewWithOptions(face.Paths, Options) (*Embedder, error) {
	return nil, fmt.Errorf("%w: %w", face.ErrNotInstalled, errNoCgo)
}

// Space implements face.Embedder.
func (*Embedder) Space() string { return Space }

// Embed implements face.Embedder.
func (*Embedder) Embed(context.Context, image.Image) (*face.Face, error) { return nil, errNoCgo }

// Detect implements face.Detector.
func (*Embedder) Detect(context.Context, image.Image) ([]face.Detection, error) { return nil, errNoCgo }

// Close does nothing.
func (*Embedder) Close() error { return nil }
