package engine_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"yibao/ledger"
	"yibao/money"
)

// Hold lifecycle (reliability matrix row R12; TigerBeetle's two-phase
// transfers): a pending transfer resolves exactly once — posted (fully or
// partly, the rest released), voided, or expired — however many
// resolutions race for it, and what it held comes back exactly once.

func post(id, pending string, amt money.Fen) ledger.Transfer {
	return ledger.Transfer{ID: id, PendingID: pending, Amount: amt, Flags: ledger.PostPending}
}

func void(id, pending string) ledger.Transfer {
	return ledger.Transfer{ID: id, PendingID: pending, Flags: ledger.VoidPending}
}

func hold(id string, amt money.Fen, timeout int64) ledger.Transfer {
	return ledger.Transfer{ID: id, DebitAccountID: fund, CreditAccountID: recv, Amount: amt, Flags: ledger.Pending, Timeout: timeout, Code: "test"}
}

// TestHoldEdges walks one hold through each edge: void twice, post after
// a void, partial post releasing the rest, post twice, expiry then post
// or void, and a resolution that repeats its own id.
func TestHoldEdges(t *testing.T) {
	e, db, clk := open(t)
	if _, err := e.Transfer(ctx, tr("in", income, fund, "100.00")); err != nil {
		t.Fatal(err)
	}
	avail := func() money.Fen {
		t.Helper()
		b, err := e.Balance(ctx, fund)
		if err != nil {
			t.Fatal(err)
		}
		return b.Available
	}
	want := func(what string, err error, r ledger.Reason) {
		t.Helper()
		if ledger.ReasonOf(err) != r {
			t.Fatalf("%s: %v, want %s", what, err, r)
		}
	}
	// Void twice: the second is refused, the money comes back once.
	if _, err := e.Transfer(ctx, hold("h1", 3000, 0)); err != nil {
		t.Fatal(err)
	}
	if got := avail(); got != 7000 {
		t.Fatalf("held: available %s", got)
	}
	if _, err := e.Transfer(ctx, void("v1", "h1")); err != nil {
		t.Fatal(err)
	}
	_, err := e.Transfer(ctx, void("v1b", "h1"))
	want("void twice", err, ledger.ReasonPendingVoided)
	_, err = e.Transfer(ctx, post("p1", "h1", 0))
	want("post after void", err, ledger.ReasonPendingVoided)
	if got := avail(); got != 10000 {
		t.Fatalf("after void: available %s, want 100.00", got)
	}
	// The same void again under its own id is the same void, not a second.
	if _, err := e.Transfer(ctx, void("v1", "h1")); err != nil {
		t.Fatalf("the void repeated under its id: %v", err)
	}
	if got := avail(); got != 10000 {
		t.Fatalf("a repeated void released twice: available %s", got)
	}

	// Partial post: 12.34 of 30.00 leaves, 17.66 comes back; a second post
	// or a void is refused.
	if _, err := e.Transfer(ctx, hold("h2", 3000, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Transfer(ctx, post("p2", "h2", 1234)); err != nil {
		t.Fatal(err)
	}
	if got := avail(); got != 10000-1234 {
		t.Fatalf("after a partial post: available %s, want 87.66", got)
	}
	_, err = e.Transfer(ctx, post("p2b", "h2", 1))
	want("post twice", err, ledger.ReasonPendingPosted)
	_, err = e.Transfer(ctx, void("v2", "h2"))
	want("void after post", err, ledger.ReasonPendingPosted)
	if _, err := e.Transfer(ctx, post("p2", "h2", 1234)); err != nil {
		t.Fatalf("the post repeated under its id: %v", err)
	}
	b, _ := e.Balance(ctx, fund)
	if b.Posted != 10000-1234 || b.Available != b.Posted {
		t.Fatalf("after the partial post: %+v", b)
	}

	// Expiry: after its timeout a hold can be neither posted nor voided;
	// it expires once and releases once.
	if _, err := e.Transfer(ctx, hold("h3", 2000, 30)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(31 * time.Second)
	_, err = e.Transfer(ctx, post("p3", "h3", 0))
	want("post after the timeout, before the sweep", err, ledger.ReasonPendingExpired)
	if n, err := e.ExpirePending(ctx); n != 1 || err != nil {
		t.Fatalf("expire: %d %v", n, err)
	}
	_, err = e.Transfer(ctx, post("p3b", "h3", 0))
	want("post after expiry", err, ledger.ReasonPendingExpired)
	_, err = e.Transfer(ctx, void("v3", "h3"))
	want("void after expiry", err, ledger.ReasonPendingExpired)
	if n, _ := e.ExpirePending(ctx); n != 0 {
		t.Fatalf("expired again: %d", n)
	}
	if b, _ := e.Balance(ctx, fund); b.Available != 10000-1234 || b.Posted != 10000-1234 {
		t.Fatalf("after expiry: %+v", b)
	}
	check(t, db)
	t.Logf("R12 edges: void twice / post after void / post twice / void after post / post or void after expiry refused; partial post 12.34 of 30.00 released 17.66; double resolutions 0")
}

// TestHoldResolutionRace: 60 holds, each with a post, a void and a
// second post racing for it — a third of them already past their timeout,
// with two expiry sweeps racing too. Every hold ends in exactly one state,
// what was posted left once and the rest came back: the fund's posted
// balance is the start minus the posted amounts, nothing stays held.
func TestHoldResolutionRace(t *testing.T) {
	e, db, clk := open(t)
	const start = 100000 // 1,000.00
	if _, err := e.Transfer(ctx, ledger.Transfer{ID: "in", DebitAccountID: income, CreditAccountID: fund, Amount: start, Code: "test"}); err != nil {
		t.Fatal(err)
	}
	const n = 60
	r := rand.New(rand.NewPCG(12, 1))
	amounts := make([]money.Fen, n)
	partial := make([]money.Fen, n)
	for i := range n {
		amounts[i] = money.Fen(100 + r.IntN(1400))
		partial[i] = 1 + money.Fen(r.IntN(int(amounts[i])))
		timeout := int64(3600)
		if i%3 == 0 {
			timeout = 10 // will be past due when the race starts
		}
		if _, err := e.Transfer(ctx, hold(fmt.Sprintf("h%02d", i), amounts[i], timeout)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(11 * time.Second)

	type outcome struct {
		posted, voided, expiredRefusals, lost int
		amount                                money.Fen
	}
	outs := make([]outcome, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	startGun := make(chan struct{})
	resolve := func(i int, t2 ledger.Transfer) {
		defer wg.Done()
		<-startGun
		res, err := e.Transfer(ctx, t2)
		mu.Lock()
		defer mu.Unlock()
		o := &outs[i]
		switch ledger.ReasonOf(err) {
		case "":
			if err != nil {
				t.Errorf("hold %d: %v", i, err)
				return
			}
			if t2.Flags == ledger.PostPending {
				o.posted++
				o.amount = res.Amount
			} else {
				o.voided++
			}
		case ledger.ReasonPendingPosted, ledger.ReasonPendingVoided:
			o.lost++
		case ledger.ReasonPendingExpired:
			o.expiredRefusals++
		default:
			t.Errorf("hold %d: %v", i, err)
		}
	}
	var swept [2]int
	for i := range n {
		h := fmt.Sprintf("h%02d", i)
		wg.Add(3)
		go resolve(i, post(h+":post", h, partial[i]))
		go resolve(i, void(h+":void", h))
		go resolve(i, post(h+":post2", h, 0))
	}
	for k := range swept {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGun
			n, err := e.ExpirePending(ctx)
			if err != nil {
				t.Error(err)
			}
			swept[k] = n
		}()
	}
	close(startGun)
	wg.Wait()

	var posted money.Fen
	var nPosted, nVoided, nExpired int
	for i, o := range outs {
		h, err := e.GetTransfer(ctx, fmt.Sprintf("h%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		pastDue := i%3 == 0
		switch {
		case pastDue && (o.posted+o.voided != 0 || o.expiredRefusals != 3 || h.Status != ledger.StatusExpired):
			t.Fatalf("hold %d past its timeout: %d posts, %d voids, %d refused as expired, status %s", i, o.posted, o.voided, o.expiredRefusals, h.Status)
		case !pastDue && (o.posted+o.voided != 1 || o.lost != 2):
			t.Fatalf("hold %d: %d posts and %d voids succeeded, %d refused as resolved", i, o.posted, o.voided, o.lost)
		case o.posted == 1 && (h.Status != ledger.StatusPosted || (o.amount != partial[i] && o.amount != amounts[i])):
			t.Fatalf("hold %d: posted %s (status %s), asked %s or all %s", i, o.amount, h.Status, partial[i], amounts[i])
		case o.voided == 1 && h.Status != ledger.StatusVoided:
			t.Fatalf("hold %d voided, status %s", i, h.Status)
		}
		posted += o.amount
		nPosted += o.posted
		nVoided += o.voided
		if pastDue {
			nExpired++
		}
	}
	b, err := e.Balance(ctx, fund)
	if err != nil {
		t.Fatal(err)
	}
	if b.Posted != start-posted || b.Available != b.Posted || b.Pending != 0 {
		t.Fatalf("fund after the race: %+v, want posted %s and nothing held", b, money.Fen(start)-posted)
	}
	if rb, _ := e.Balance(ctx, recv); rb.Posted != posted {
		t.Fatalf("receivable %s, want %s", rb.Posted, posted)
	}
	if again, _ := e.ExpirePending(ctx); again != 0 {
		t.Fatalf("a later sweep expired %d more", again)
	}
	check(t, db)
	if swept[0]+swept[1] != nExpired {
		// Both sweeps may pick the same hold; each expiry is counted only
		// by the sweep whose transfer applied it.
		t.Errorf("the two racing sweeps reported %d + %d expiries for %d expired holds", swept[0], swept[1], nExpired)
	}
	t.Logf("R12 race: %d holds × 3 racing resolutions + 2 racing sweeps: %d posted (%s), %d voided, %d expired; double resolutions 0, released = held − posted, nothing left pending",
		n, nPosted, posted, nVoided, nExpired)
}
