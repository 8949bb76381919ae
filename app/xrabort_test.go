package app_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/policy"
	"yibao/settlement"
)

// TestCrossRegionAbortWhileSettling: the hub decides "aborted" while the
// treating node's cashier waits for the answer — the insured node's vote is
// stale (another settlement of the person moved its accumulators), or it
// died after the snapshot. The settle must return (a stale vote is
// calculated again; a refusal is cross_region_aborted) and the prepared
// settlement must be voided. Found by `yibao chaos xr` (R20): the settle
// deadlocked in Void on the person lock Settle already held.
func TestCrossRegionAbortWhileSettling(t *testing.T) {
	r := openRegions(t)
	sd, js := r.Node("37"), r.Node("32")
	ps := persons(t, sd)
	ctx := context.Background()

	// settleOrHang settles v at js and fails the test if it has not
	// returned within 15 s.
	settleOrHang := func(t *testing.T, cctx context.Context, v *settlement.Visit) (*settlement.Settlement, error) {
		t.Helper()
		type res struct {
			st  *settlement.Settlement
			err error
		}
		done := make(chan res, 1)
		go func() {
			st, err := settle(cctx, js, v)
			done <- res{st, err}
		}()
		select {
		case x := <-done:
			return x.st, x.err
		case <-time.After(15 * time.Second):
			t.Fatalf("settle of visit %s has not returned in 15 s: deadlocked after the hub aborted", v.MdtrtID)
			return nil, nil
		}
	}

	t.Run("stale vote", func(t *testing.T) {
		psn := ps[11]
		v, cctx := bill(t, js, psn, policy.GeneralOutpatient)
		local, lctx := bill(t, sd, psn, policy.GeneralOutpatient) // the same person at a hospital of the insured node
		var once sync.Once
		r.Hub.Hub.SetFault(func(point, txid string) error {
			if point == "after-begin" {
				once.Do(func() { settle(lctx, sd, local) }) // between the treating node's snapshot and the insured node's prepare
			}
			return nil
		})
		defer r.Hub.Hub.SetFault(nil)
		st, err := settleOrHang(t, cctx, v)
		if err != nil || st.Status != settlement.StatusCompleted {
			t.Fatalf("settle after a stale vote: %v", err)
		}
	})

	t.Run("insured node gone after the snapshot", func(t *testing.T) {
		v, cctx := bill(t, js, ps[12], policy.GeneralOutpatient)
		var once sync.Once
		r.Hub.Hub.SetFault(func(point, txid string) error {
			if point == "after-begin" {
				once.Do(func() { r.StopNode(sd) })
			}
			return nil
		})
		defer r.Hub.Hub.SetFault(nil)
		_, err := settleOrHang(t, cctx, v)
		if !yibao.IsCode(err, yibao.CodeUnavailable) {
			t.Fatalf("want cross_region_aborted, got %v", err)
		}
		if err := r.StartNode(ctx, sd); err != nil {
			t.Fatal(err)
		}
		checkAll(t, r)
	})
}
