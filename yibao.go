// Package yibao holds the domain words of the platform — identifiers,
// registry records, visits and settlements — and the one error type every
// package returns. It imports nothing of the project and does no I/O.
package yibao
