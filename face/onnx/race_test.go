//go:build race

package onnx

// raceOn makes the slowest tests lighter under the race detector, which
// also slows ONNX Runtime's calls through cgo several times.
const raceOn = true
