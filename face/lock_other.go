//go:build !unix

package face

// lockDir is a no-op where flock is not available; concurrent installs
// are then the caller's business.
func lockDir(string) (func(), error) { return func() {}, nil }
