package yibao

import (
	"context"
	"time"
)

// Every calls fn every interval until ctx ends: the background loops of
// the services (expiry, delivery, recovery, review scans, credit cycle).
func Every(ctx context.Context, interval time.Duration, fn func(ctx context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
