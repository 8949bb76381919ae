//go:build race

package main

import "time"

// startLimit: the race detector slows the demo's seeding several times;
// the README's 10 s holds for the normal build (docs/benchmarks.md).
const startLimit = 30 * time.Second
