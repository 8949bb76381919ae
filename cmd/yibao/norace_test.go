//go:build !race

package main

import "time"

// startLimit is the README's promise: the demo answers within 10 s.
const startLimit = 10 * time.Second
