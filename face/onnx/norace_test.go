//go:build !race

package onnx

const raceOn = false
