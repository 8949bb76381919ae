// Package faultfront is a test front for an HTTP handler that loses the
// answers of chosen requests: the request runs in full — or has its
// context cancelled the moment its effect is visible, as when a client
// times out and hangs up — and the connection is then closed without a
// response. The fault/attack suite uses it for "crash after commit,
// before reply" (matrix row R7).
package faultfront

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// LostReply is the front. KeyOf names a request (an Idempotency-Key, an
// NHSA msgid); only requests named with Lose are faulted.
type LostReply struct {
	Inner http.Handler
	KeyOf func(*http.Request) string

	mu     sync.Mutex
	faults map[string]func() bool
	// cancelled counts requests whose context was cancelled after their
	// effect was visible and before the handler returned.
	cancelled atomic.Int64
}

// Lose faults the next request named key: with committed nil its answer
// is dropped; otherwise its context is cancelled once committed reports
// true, and its answer dropped too.
func (f *LostReply) Lose(key string, committed func() bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.faults == nil {
		f.faults = map[string]func() bool{}
	}
	f.faults[key] = committed
}

// Cancelled is how many requests were cut short after their effect.
func (f *LostReply) Cancelled() int64 { return f.cancelled.Load() }

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// ServeHTTP passes unfaulted requests through.
func (f *LostReply) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := f.KeyOf(r)
	f.mu.Lock()
	committed, ok := f.faults[key]
	delete(f.faults, key)
	f.mu.Unlock()
	if !ok {
		f.Inner.ServeHTTP(w, r)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	done := make(chan struct{})
	if committed != nil {
		go func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if committed() {
					f.cancelled.Add(1)
					cancel() // the client is gone: its request's context ends
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	f.Inner.ServeHTTP(&discard{h: http.Header{}}, r.WithContext(ctx))
	close(done)
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
	}
}
