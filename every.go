package yibao

import (
	"context"
	"time"
)

// Every calls fn every interval until ctx ends: the background loops of
// the services (expiry, delivery, recovery, review scans, credit cycle).
func Every(ctx context.Context, interval time.Duration, fn func(ctx context.Context)) {
	every(ctx, interval, nil, fn)
}

// EveryOrWoken calls fn at once, then every interval and whenever wake
// fires, until ctx ends: a delivery loop that new work wakes early.
func EveryOrWoken(ctx context.Context, interval time.Duration, wake <-chan struct{}, fn func(ctx context.Context)) {
	fn(ctx)
	every(ctx, interval, wake, fn)
}

func every(ctx context.Context, interval time.Duration, wake <-chan struct{}, fn func(ctx context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		fn(ctx)
	}
}
