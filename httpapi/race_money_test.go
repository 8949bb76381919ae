package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/credit"
	"yibao/httpapi"
	"yibao/ledger"
	"yibao/money"
	"yibao/pay"
	"yibao/settlement"
	"yibao/sim/banksim"
	"yibao/sim/faultfront"
)

// The money routes' idempotency under stress (reliability matrix rows R5,
// R6, R7 and R8, docs/api.md "Idempotency"): every route that moves money
// — settle, pay, refund, reverse — gets the same request many times at
// once under one key, round after round; a key reused with another body;
// a reply lost after the commit; and a business rejection retried after
// its cause is gone. Per key the effect happens once, and the ledger moves
// by exactly one execution's legs.

// TestMoneyRoutesIdempotency runs the four rows on one seeded platform.
func TestMoneyRoutesIdempotency(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct {
		name string
		f    func(*testing.T, *rig)
	}{
		{"R5 same key at once, round after round", testIdempotencyRaceMoneyRoutes},
		{"R6 key reused with another body", testIdempotencyKeyReuseMovesNothing},
		{"R7 reply lost after the commit", testReplyLostAfterCommit},
		{"R8 business rejection is sticky", testBusinessRejectionIsSticky},
		{"R13 reversal after a cash refund", testReverseAfterRefund},
	} {
		t.Run(c.name, func(t *testing.T) {
			r.t, r.e.t = t, t
			c.f(t, r)
		})
	}
}

// rig drives the money routes of one env as its cashier.
type rig struct {
	e       *env
	t       *testing.T
	h1      string
	cashier context.Context // the same institution, for setting up through the services
	drugs   []string        // current class A drugs
	extras  []string        // current class C items (all out of pocket)
	people  []string        // employees of 370100
	next    int
}

func newRig(t *testing.T) *rig {
	e := newEnv(t)
	r := &rig{e: e, t: t, h1: e.vars["{H1}"]}
	r.cashier = yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "race-cashier",
		Role: yibao.RoleCashier, Institution: r.h1})
	today := yibao.DateOf(time.Now())
	for _, it := range e.data.Catalog {
		if it.ValidFrom > today || (it.ValidTo != "" && it.ValidTo < today) {
			continue
		}
		switch {
		case it.Kind == yibao.ItemDrug && it.Class == "A":
			r.drugs = append(r.drugs, it.Code)
		case it.Class == "C":
			r.extras = append(r.extras, it.Code)
		}
	}
	for _, c := range e.data.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && c.Admdvs == "370100" {
			r.people = append(r.people, c.PsnNo)
		}
	}
	if len(r.drugs) < 2 || len(r.extras) == 0 || len(r.people) < 8 {
		t.Fatalf("demo data: %d drugs, %d class C items, %d employees", len(r.drugs), len(r.extras), len(r.people))
	}
	return r
}

// visit opens an outpatient visit of psn at H1 with two class A lines
// (about 800 yuan), set up through the service: only the races go over HTTP.
func (r *rig) visit(psn string) string {
	r.t.Helper()
	v, err := r.e.app.Settle.OpenVisit(r.cashier, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: r.h1, Type: "general_outpatient",
		DeptCode: "NK", DeptName: "内科"})
	if err != nil {
		r.t.Fatal(err)
	}
	r.next++
	if _, err := r.e.app.Settle.AddFeeLines(r.cashier, v.MdtrtID, []settlement.FeeLineInput{
		{FeedetlSn: "1", CatalogCode: r.drugs[r.next%len(r.drugs)], UnitPrice: money.Fen(48000 + 100*r.next), Quantity: money.MustRatio(1, 1)},
		{FeedetlSn: "2", CatalogCode: r.drugs[(r.next+1)%len(r.drugs)], UnitPrice: money.Fen(32000), Quantity: money.MustRatio(1, 1)},
	}); err != nil {
		r.t.Fatal(err)
	}
	return v.MdtrtID
}

// answer is one HTTP exchange as the client saw it.
type answer struct {
	status   int
	replayed bool
	body     []byte
	err      error // transport error: no answer at all
}

// send posts body to path as the cashier under key, through base (the
// test server, or a faulty front of it) with client hc.
func (r *rig) send(hc *http.Client, base, path, key string, body []byte) answer {
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.e.tokens["cashier"])
	req.Header.Set(httpapi.HeaderIdempotencyKey, key)
	resp, err := hc.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true", body: b, err: err}
}

func (r *rig) post(path, key string, body any) answer {
	b, _ := json.Marshal(body)
	return r.send(http.DefaultClient, r.e.srv.URL, path, key, b)
}

func errCode(body []byte) string {
	var eb httpapi.ErrorBody
	json.Unmarshal(body, &eb)
	return string(eb.Code)
}

// ledgerState is every account's posted and pending balance.
type ledgerState map[string][2]money.Fen

func (r *rig) ledger() ledgerState {
	r.t.Helper()
	rows, err := r.e.app.DB.Query(context.Background(), `SELECT id, credits_posted - debits_posted, credits_pending - debits_pending FROM ledger_accounts`)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rows.Close()
	out := ledgerState{}
	for rows.Next() {
		var id string
		var posted, pending int64
		if err := rows.Scan(&id, &posted, &pending); err != nil {
			r.t.Fatal(err)
		}
		out[id] = [2]money.Fen{money.Fen(posted), money.Fen(pending)}
	}
	return out
}

// moved is what one execution should do to the ledger: per account,
// the change of its posted and pending balance.
type moved map[string][2]money.Fen

func (m moved) add(debit, credit string, amt money.Fen, pending bool) {
	i := 0
	if pending {
		i = 1
	}
	d, c := m[debit], m[credit]
	d[i] -= amt
	c[i] += amt
	m[debit], m[credit] = d, c
}

func legsMoved(legs []settlement.Leg, sign money.Fen) moved {
	m := moved{}
	for _, l := range legs {
		m.add(l.Debit, l.Credit, sign*l.Amount, l.Pending)
	}
	return m
}

// diff compares the ledger's change from before with want and returns
// the differences (none: the ledger moved by exactly one execution).
func (r *rig) diff(before ledgerState, want moved) []string {
	after := r.ledger()
	var out []string
	for id := range mergeKeys(before, after, want) {
		got := [2]money.Fen{after[id][0] - before[id][0], after[id][1] - before[id][1]}
		if got != want[id] {
			out = append(out, fmt.Sprintf("%s moved %s posted / %s pending, want %s / %s", id, got[0], got[1], want[id][0], want[id][1]))
		}
	}
	sort.Strings(out)
	return out
}

func mergeKeys(maps ...any) map[string]bool {
	out := map[string]bool{}
	for _, m := range maps {
		switch m := m.(type) {
		case ledgerState:
			for k := range m {
				out[k] = true
			}
		case moved:
			for k := range m {
				out[k] = true
			}
		}
	}
	return out
}

func (r *rig) count(query string, args ...any) int {
	r.t.Helper()
	var n int
	if err := r.e.app.DB.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

func (r *rig) settlement(id string) *settlement.Settlement {
	r.t.Helper()
	st, err := r.e.app.Settle.GetSettlement(r.cashier, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// burst is the outcome of n identical requests sent at once.
type burst struct {
	statuses map[int]int
	wins     map[string]int // distinct success bodies
	win      []byte
	inFlight int // 409 idempotency_conflict: the first is still running
	replays  int // answered from the stored response
	other    []string
}

// burst sends the same request n times at once under one key. A success
// is okStatus; the only other acceptable answer is 409 "still in flight".
func (r *rig) burst(n int, path, key string, body []byte, okStatus int) *burst {
	b := &burst{statuses: map[int]int{}, wins: map[string]int{}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a := r.send(http.DefaultClient, r.e.srv.URL, path, key, body)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case a.err != nil:
				b.other = append(b.other, a.err.Error())
			case a.status == okStatus:
				b.statuses[a.status]++
				b.wins[string(a.body)]++
				b.win = a.body
				if a.replayed {
					b.replays++
				}
			case a.status == 409 && errCode(a.body) == "idempotency_conflict":
				b.statuses[a.status]++
				b.inFlight++
			default:
				b.statuses[a.status]++
				b.other = append(b.other, fmt.Sprintf("%d %s", a.status, a.body))
			}
		}()
	}
	close(start)
	wg.Wait()
	return b
}

// check requires exactly one distinct success, every other answer "in
// flight", and the key's stored answer to be that success afterwards.
func (r *rig) check(what string, b *burst, n int, path, key string, body []byte, okStatus int) {
	r.t.Helper()
	if len(b.other) > 0 || len(b.wins) != 1 || b.statuses[okStatus]+b.inFlight != n {
		r.t.Fatalf("%s: answers %v, %d distinct successes, unexpected %q", what, b.statuses, len(b.wins), b.other)
	}
	resp, got := r.e.do("cashier", "POST", path, body, map[string]string{httpapi.HeaderIdempotencyKey: key})
	if resp.StatusCode != okStatus || resp.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(got, b.win) {
		r.t.Fatalf("%s: the key afterwards answers %d (replayed %q) %s, want the stored %s", what, resp.StatusCode,
			resp.Header.Get("Idempotent-Replayed"), got, b.win)
	}
}

// testIdempotencyRaceMoneyRoutes (R5 repeated): round after round (5, or
// YIBAO_RACE_ROUNDS), each
// money-moving route gets one request 50 times at once under one key.
// Per key: one execution (one settlement, order, refund or reversal), one
// id in every success, and the ledger moved by exactly one execution's
// legs; all other answers are 409 "still in flight" or the replay.
func testIdempotencyRaceMoneyRoutes(t *testing.T, r *rig) {
	// Five rounds keep the suite quick under -race; the matrix's long run
	// is YIBAO_RACE_ROUNDS=20 (or more).
	rounds, n := 5, 50
	if v, err := strconv.Atoi(os.Getenv("YIBAO_RACE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	} else if testing.Short() {
		rounds = 2
	}
	var keys, requests, inFlight, replays int
	for round := range rounds {
		psnA, psnB := r.people[2+(2*round)%(len(r.people)-2)], r.people[3+(2*round)%(len(r.people)-3)]
		visitA, visitB := r.visit(psnA), r.visit(psnB)

		// Settle visit A at the counter.
		path, key, body := "/api/v1/visits/"+visitA+"/settle", r.e.idem(), []byte(`{"pay_mode":"cash"}`)
		before := r.ledger()
		b := r.burst(n, path, key, body, 201)
		r.check("settle", b, n, path, key, body, 201)
		var st settlement.Settlement
		json.Unmarshal(b.win, &st)
		if got := r.count(`SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, visitA); got != 1 || st.SetlID == "" {
			t.Fatalf("round %d settle: %d settlements of one visit (%q)", round, got, st.SetlID)
		}
		if d := r.diff(before, legsMoved(st.Legs, 1)); len(d) > 0 {
			t.Fatalf("round %d settle: the ledger did not move once: %v", round, d)
		}
		keys, requests, inFlight, replays = keys+1, requests+n, inFlight+b.inFlight, replays+b.replays

		// Pay visit B at the counter, the personal account left out so
		// that there is an out-of-pocket part to refund.
		path, key, body = "/api/v1/visits/"+visitB+"/pay", r.e.idem(), []byte(`{"channel":"counter","acct_used_flag":false}`)
		before = r.ledger()
		b = r.burst(n, path, key, body, 201)
		r.check("pay", b, n, path, key, body, 201)
		var o pay.Order
		json.Unmarshal(b.win, &o)
		if got := r.count(`SELECT COUNT(*) FROM payment_orders WHERE mdtrt_id = ?`, visitB); got != 1 || o.Status != pay.StatusPaid {
			t.Fatalf("round %d pay: %d orders of one visit, status %s", round, got, o.Status)
		}
		if got := r.count(`SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, visitB); got != 1 {
			t.Fatalf("round %d pay: %d settlements of one visit", round, got)
		}
		if d := r.diff(before, legsMoved(r.settlement(o.SetlID).Legs, 1)); len(d) > 0 {
			t.Fatalf("round %d pay: the ledger did not move once: %v", round, d)
		}
		keys, requests, inFlight, replays = keys+1, requests+n, inFlight+b.inFlight, replays+b.replays

		// Refund a third of its out-of-pocket part.
		if o.SelfPay < 3 {
			t.Fatalf("round %d: out-of-pocket part %s, nothing to refund", round, o.SelfPay)
		}
		amt := o.SelfPay / 3
		refundNo := fmt.Sprintf("r%d", round)
		path, key = "/api/v1/payments/"+o.PayOrdID+"/refunds", r.e.idem()
		body, _ = json.Marshal(map[string]any{"refund_no": refundNo, "kind": "cash", "amount": amt})
		before = r.ledger()
		b = r.burst(n, path, key, body, 201)
		r.check("refund", b, n, path, key, body, 201)
		var rf pay.Refund
		json.Unmarshal(b.win, &rf)
		if got := r.count(`SELECT COUNT(*) FROM ledger_transfers WHERE id LIKE ?`, "refund:"+o.PayOrdID+"-%"); got != 1 || rf.Amount != amt {
			t.Fatalf("round %d refund: %d refund transfers, amount %s", round, got, rf.Amount)
		}
		if got := r.count(`SELECT refunded FROM payment_orders WHERE pay_ord_id = ?`, o.PayOrdID); money.Fen(got) != amt {
			t.Fatalf("round %d refund: the order counts %s refunded, want %s", round, money.Fen(got), amt)
		}
		want := moved{}
		want.add("recv:"+r.h1, "cash:"+r.h1, amt, false)
		if d := r.diff(before, want); len(d) > 0 {
			t.Fatalf("round %d refund: the ledger did not move once: %v", round, d)
		}
		keys, requests, inFlight, replays = keys+1, requests+n, inFlight+b.inFlight, replays+b.replays

		// Reverse visit A's settlement.
		path, key, body = "/api/v1/settlements/"+st.SetlID+"/reverse", r.e.idem(), nil
		before = r.ledger()
		b = r.burst(n, path, key, body, 200)
		r.check("reverse", b, n, path, key, body, 200)
		if got := r.count(`SELECT COUNT(*) FROM outbox WHERE subject = ? AND topic = 'settlement.reversed'`, st.SetlID); got != 1 {
			t.Fatalf("round %d reverse: %d reversal events", round, got)
		}
		if got := r.count(`SELECT COUNT(*) FROM ledger_transfers WHERE id LIKE ?`, st.SetlID+":rev:%"); got != len(st.Legs) {
			t.Fatalf("round %d reverse: %d mirrored transfers for %d legs", round, got, len(st.Legs))
		}
		if d := r.diff(before, legsMoved(st.Legs, -1)); len(d) > 0 {
			t.Fatalf("round %d reverse: the ledger did not move once: %v", round, d)
		}
		keys, requests, inFlight, replays = keys+1, requests+n, inFlight+b.inFlight, replays+b.replays
	}
	t.Logf("R5: %d rounds × 4 routes = %d keys, %d requests (%d at once per key): executions per key 1, distinct ids per key 1, ledger diff 0 fen; %d answered 409 in flight, %d replayed",
		rounds, keys, requests, n, inFlight, replays)
}

// testIdempotencyKeyReuseMovesNothing (R6): a key used again with another
// body — an amount one fen up or down, another patient, another visit,
// another pay option — is refused with the stable 409 idempotency_conflict
// and changes nothing; sent at once with the original, exactly one of the
// two bodies runs, once.
func testIdempotencyKeyReuseMovesNothing(t *testing.T, r *rig) {
	refused := 0
	reuse := func(what, path, key string, body any) {
		t.Helper()
		before := r.ledger()
		rows := r.count(`SELECT (SELECT COUNT(*) FROM visits) + (SELECT COUNT(*) FROM settlements) + (SELECT COUNT(*) FROM payment_orders) + (SELECT COUNT(*) FROM payment_refunds)`)
		a := r.post(path, key, body)
		if a.status != 409 || errCode(a.body) != "idempotency_conflict" || !strings.Contains(string(a.body), "different request") {
			t.Fatalf("%s: %d %s, want 409 idempotency_conflict", what, a.status, a.body)
		}
		if d := r.diff(before, moved{}); len(d) > 0 {
			t.Fatalf("%s moved money: %v", what, d)
		}
		if got := r.count(`SELECT (SELECT COUNT(*) FROM visits) + (SELECT COUNT(*) FROM settlements) + (SELECT COUNT(*) FROM payment_orders) + (SELECT COUNT(*) FROM payment_refunds)`); got != rows {
			t.Fatalf("%s wrote %d rows", what, got-rows)
		}
		refused++
	}

	// Another patient under a visit's key.
	psnA, psnB := r.people[2], r.people[3]
	key := r.e.idem()
	visit := map[string]any{"psn_no": psnA, "fixmedins_code": r.h1, "visit_type": "general_outpatient", "dept_name": "内科"}
	if a := r.post("/api/v1/visits", key, visit); a.status != 201 {
		t.Fatalf("visit: %d %s", a.status, a.body)
	}
	visit["psn_no"] = psnB
	reuse("a visit's key for another patient", "/api/v1/visits", key, visit)

	// A settlement's key on another visit, and with another pay mode.
	v1, v2 := r.visit(psnA), r.visit(psnB)
	key = r.e.idem()
	if a := r.post("/api/v1/visits/"+v1+"/settle", key, map[string]any{"pay_mode": "cash"}); a.status != 201 {
		t.Fatalf("settle: %d %s", a.status, a.body)
	}
	reuse("a settlement's key on another visit", "/api/v1/visits/"+v2+"/settle", key, map[string]any{"pay_mode": "cash"})
	reuse("a settlement's key with another pay mode", "/api/v1/visits/"+v1+"/settle", key, map[string]any{"pay_mode": "later"})

	// A payment's key with the account switched on.
	key = r.e.idem()
	a := r.post("/api/v1/visits/"+v2+"/pay", key, map[string]any{"channel": "counter", "acct_used_flag": false})
	var o pay.Order
	if json.Unmarshal(a.body, &o); a.status != 201 || o.SelfPay < 10 {
		t.Fatalf("pay: %d %s", a.status, a.body)
	}
	reuse("a payment's key with another pay option", "/api/v1/visits/"+v2+"/pay", key, map[string]any{"channel": "counter", "acct_used_flag": true})

	// A refund's key with the amount one fen up and one fen down, and for
	// another refund number.
	amt := o.SelfPay / 4
	key = r.e.idem()
	refunds := "/api/v1/payments/" + o.PayOrdID + "/refunds"
	if a := r.post(refunds, key, map[string]any{"refund_no": "k1", "kind": "cash", "amount": amt}); a.status != 201 {
		t.Fatalf("refund: %d %s", a.status, a.body)
	}
	reuse("a refund's key, amount + 1 fen", refunds, key, map[string]any{"refund_no": "k1", "kind": "cash", "amount": amt + 1})
	reuse("a refund's key, amount − 1 fen", refunds, key, map[string]any{"refund_no": "k1", "kind": "cash", "amount": amt - 1})
	reuse("a refund's key, another refund number", refunds, key, map[string]any{"refund_no": "k2", "kind": "cash", "amount": amt})

	// Both bodies at once under a fresh key: 25 ask amt, 25 ask amt + 1 fen.
	key = r.e.idem()
	before := r.ledger()
	refundedBefore := money.Fen(r.count(`SELECT refunded FROM payment_orders WHERE pay_ord_id = ?`, o.PayOrdID))
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[string]int{}
	statuses := map[int]int{}
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"refund_no": "k3", "kind": "cash", "amount": amt + money.Fen(i%2)})
			a := r.send(http.DefaultClient, r.e.srv.URL, refunds, key, body)
			mu.Lock()
			defer mu.Unlock()
			statuses[a.status]++
			switch {
			case a.status == 201:
				wins[string(body)]++
			case a.status == 409 && errCode(a.body) == "idempotency_conflict":
			default:
				t.Errorf("mixed bodies: %d %s %v", a.status, a.body, a.err)
			}
		}()
	}
	wg.Wait()
	if len(wins) != 1 || statuses[201]+statuses[409] != 50 {
		t.Fatalf("mixed bodies under one key: answers %v, %d bodies succeeded", statuses, len(wins))
	}
	var won struct {
		Amount money.Fen `json:"amount"`
	}
	for b := range wins {
		json.Unmarshal([]byte(b), &won)
	}
	want := moved{}
	want.add("recv:"+r.h1, "cash:"+r.h1, won.Amount, false)
	if d := r.diff(before, want); len(d) > 0 {
		t.Fatalf("mixed bodies: the ledger did not move once: %v", d)
	}
	if got := money.Fen(r.count(`SELECT refunded FROM payment_orders WHERE pay_ord_id = ?`, o.PayOrdID)); got != refundedBefore+won.Amount {
		t.Fatalf("mixed bodies: refunded %s, want %s + %s", got, refundedBefore, won.Amount)
	}
	t.Logf("R6: %d reuses with another body refused 409 idempotency_conflict (100%%), side effects 0; 50 mixed bodies at once: %d answered 201, all with one body (%s yuan), %d refused 409, money moved once",
		refused, statuses[201], won.Amount, statuses[409])
}

// testReplyLostAfterCommit (R7): the effect commits but the answer never
// reaches the client — lost on the way, or the client hangs up right
// after the commit. The client retries with the same key and gets the
// stored original answer; nothing happens twice.
func testReplyLostAfterCommit(t *testing.T, r *rig) {
	front := &faultfront.LostReply{Inner: r.e.app.Handler(), KeyOf: func(r *http.Request) string { return r.Header.Get(httpapi.HeaderIdempotencyKey) }}
	faulty := httptest.NewServer(front)
	defer faulty.Close()
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} // no transparent retry on a reused connection
	defer fresh.CloseIdleConnections()

	var lost, replayed, retries int
	// try sends the request through the faulty front (no answer), then
	// retries it with the same key until it is answered, and returns the
	// answer.
	try := func(what, path string, body []byte, okStatus int, committed func() bool) answer {
		t.Helper()
		key := r.e.idem()
		front.Lose(key, committed)
		if a := r.send(fresh, faulty.URL, path, key, body); a.err == nil {
			t.Fatalf("%s: the reply was meant to be lost, got %d %s", what, a.status, a.body)
		}
		lost++
		deadline := time.Now().Add(10 * time.Second)
		for {
			a := r.send(http.DefaultClient, r.e.srv.URL, path, key, body)
			retries++
			if a.status == 409 && errCode(a.body) == "idempotency_conflict" && strings.Contains(string(a.body), "still being processed") && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if a.status != okStatus || !a.replayed {
				t.Fatalf("%s: the retry with the same key answered %d (replayed %v) %s; want the stored original %d", what, a.status, a.replayed, a.body, okStatus)
			}
			replayed++
			return a
		}
	}
	exists := func(query string, args ...any) func() bool {
		return func() bool {
			var n int
			r.e.app.DB.QueryRow(context.Background(), query, args...).Scan(&n)
			return n > 0
		}
	}
	const trials = 3
	for trial := range 2 * trials {
		hang := trial >= trials // the first half loses the reply, the second hangs up after the commit
		psn := r.people[2+trial%(len(r.people)-2)]
		visitA, visitB := r.visit(psn), r.visit(psn)
		mode := map[bool]string{false: "reply lost", true: "client hung up after the commit"}[hang]
		when := func(query string, args ...any) func() bool {
			if !hang {
				return nil
			}
			return exists(query, args...)
		}

		before := r.ledger()
		a := try("settle, "+mode, "/api/v1/visits/"+visitA+"/settle", []byte(`{"pay_mode":"cash"}`), 201,
			when(`SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, visitA))
		var st settlement.Settlement
		json.Unmarshal(a.body, &st)
		if got := r.count(`SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, visitA); got != 1 || st.SetlID == "" {
			t.Fatalf("settle, %s: %d settlements", mode, got)
		}
		if d := r.diff(before, legsMoved(st.Legs, 1)); len(d) > 0 {
			t.Fatalf("settle, %s: %v", mode, d)
		}

		before = r.ledger()
		a = try("pay, "+mode, "/api/v1/visits/"+visitB+"/pay", []byte(`{"channel":"counter","acct_used_flag":false}`), 201,
			when(`SELECT COUNT(*) FROM payment_orders WHERE mdtrt_id = ?`, visitB))
		var o pay.Order
		json.Unmarshal(a.body, &o)
		if got := r.count(`SELECT COUNT(*) FROM payment_orders WHERE mdtrt_id = ?`, visitB); got != 1 || o.Status != pay.StatusPaid {
			t.Fatalf("pay, %s: %d orders, status %q", mode, got, o.Status)
		}
		if d := r.diff(before, legsMoved(r.settlement(o.SetlID).Legs, 1)); len(d) > 0 {
			t.Fatalf("pay, %s: %v", mode, d)
		}

		before = r.ledger()
		amt := o.SelfPay / 2
		body, _ := json.Marshal(map[string]any{"refund_no": "lost", "kind": "cash", "amount": amt})
		a = try("refund, "+mode, "/api/v1/payments/"+o.PayOrdID+"/refunds", body, 201,
			when(`SELECT COUNT(*) FROM ledger_transfers WHERE id = ?`, "refund:"+o.PayOrdID+"-lost"))
		var rf pay.Refund
		json.Unmarshal(a.body, &rf)
		if rf.Amount != amt || rf.RefundNo != "lost" {
			t.Fatalf("refund, %s: %s", mode, a.body)
		}
		if _, err := r.e.app.Pay.Sweep(context.Background()); err != nil { // a refund left half-driven is the recovery loop's
			t.Fatal(err)
		}
		want := moved{}
		want.add("recv:"+r.h1, "cash:"+r.h1, amt, false)
		if d := r.diff(before, want); len(d) > 0 {
			t.Fatalf("refund, %s: %v", mode, d)
		}

		before = r.ledger()
		a = try("reverse, "+mode, "/api/v1/settlements/"+st.SetlID+"/reverse", nil, 200,
			when(`SELECT COUNT(*) FROM settlements WHERE setl_id = ? AND status = 'reversed'`, st.SetlID))
		if got := r.count(`SELECT COUNT(*) FROM ledger_transfers WHERE id LIKE ?`, st.SetlID+":rev:%"); got != len(st.Legs) {
			t.Fatalf("reverse, %s: %d mirrored transfers for %d legs", mode, got, len(st.Legs))
		}
		if d := r.diff(before, legsMoved(st.Legs, -1)); len(d) > 0 {
			t.Fatalf("reverse, %s: %v", mode, d)
		}
	}
	t.Logf("R7: REST: %d answers lost after the commit (%d by a client hanging up, %d of those while the handler was still running), %d retries, replayed original answers %d = lost answers; duplicate effects 0",
		lost, lost/2, front.Cancelled(), retries, replayed)
}

// testBusinessRejectionIsSticky (R8): a money call refused for a business
// reason is answered the same way when retried with its key after the
// cause is gone — docs/api.md stores 4xx answers for 24 h — and a new key
// then succeeds.
func testBusinessRejectionIsSticky(t *testing.T, r *rig) {
	sticky := 0
	retry := func(what, path, key string, body any, first answer, nothingMoved func() bool) {
		t.Helper()
		a := r.post(path, key, body)
		if a.status != first.status || !bytes.Equal(a.body, first.body) || !a.replayed {
			t.Fatalf("%s: after the cause was removed the same key answered %d %s (replayed %v); want the stored %d %s",
				what, a.status, a.body, a.replayed, first.status, first.body)
		}
		if !nothingMoved() {
			t.Fatalf("%s: the sticky retry did something", what)
		}
		sticky++
	}

	// 1. Settling a visit with no fee lines yet; then the lines arrive.
	psn := r.people[4]
	v, err := r.e.app.Settle.OpenVisit(r.cashier, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: r.h1, Type: "general_outpatient", DeptName: "内科"})
	if err != nil {
		t.Fatal(err)
	}
	key := r.e.idem()
	path, body := "/api/v1/visits/"+v.MdtrtID+"/settle", map[string]any{"pay_mode": "cash"}
	first := r.post(path, key, body)
	if first.status != 409 || errCode(first.body) != "failed_precondition" {
		t.Fatalf("settle without lines: %d %s", first.status, first.body)
	}
	if _, err := r.e.app.Settle.AddFeeLines(r.cashier, v.MdtrtID, []settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: r.drugs[0],
		UnitPrice: money.Yuan(100), Quantity: money.MustRatio(1, 1)}}); err != nil {
		t.Fatal(err)
	}
	before := r.ledger()
	retry("settle without lines", path, key, body, first, func() bool {
		return r.count(`SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, v.MdtrtID) == 0 && len(r.diff(before, moved{})) == 0
	})
	if a := r.post(path, r.e.idem(), body); a.status != 201 {
		t.Fatalf("settle with a new key: %d %s", a.status, a.body)
	}

	// 2. 家庭共济 without the holder's consent; then the consent is recorded.
	holder, member := r.people[5], r.people[6]
	mv := r.visit(member)
	key, path, body = r.e.idem(), "/api/v1/visits/"+mv+"/settle", map[string]any{"pay_mode": "cash", "family_psn_no": holder}
	first = r.post(path, key, body)
	if first.status != 403 || errCode(first.body) != "permission_denied" {
		t.Fatalf("family aid without consent: %d %s", first.status, first.body)
	}
	if _, err := r.e.app.Settle.LinkFamily(yibao.WithPrincipal(context.Background(), yibao.System("test")), holder, member, "spouse"); err != nil {
		t.Fatal(err)
	}
	before = r.ledger()
	retry("family aid without consent", path, key, body, first, func() bool {
		return r.count(`SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, mv) == 0 && len(r.diff(before, moved{})) == 0
	})
	if a := r.post(path, r.e.idem(), body); a.status != 201 {
		t.Fatalf("family aid with a new key after consent: %d %s", a.status, a.body)
	}

	// 3. A payment on credit above what the line has left; then the bill
	// is corrected to fit.
	ctx := context.Background()
	var holderCredit string
	var limit money.Fen
	for _, p := range r.people {
		if ag, err := r.e.app.Credit.ActiveAgreement(ctx, p, credit.SceneAll); err == nil {
			line, err := r.e.app.Ledger.Account(ctx, ledger.CreditLine(ag.AgreementNo).ID)
			if err != nil {
				t.Fatal(err)
			}
			holderCredit, limit = p, line.Available()
			break
		}
	}
	if r.e.app.Bank != nil {
		r.e.app.Bank.Sim.SetCallbackURL(r.e.srv.URL + "/api/v1/credit/notify/" + banksim.DefaultBankCode)
	}
	if holderCredit == "" {
		t.Log("R8: no demo person with an active credit agreement; the credit case is skipped")
	} else {
		cv, err := r.e.app.Settle.OpenVisit(r.cashier, settlement.VisitRequest{PsnNo: holderCredit, FixmedinsCode: r.h1, Type: "general_outpatient", DeptName: "内科"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.e.app.Settle.AddFeeLines(r.cashier, cv.MdtrtID, []settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: r.extras[0],
			UnitPrice: limit + 1, Quantity: money.MustRatio(1, 1)}}); err != nil {
			t.Fatal(err)
		}
		key, path, body = r.e.idem(), "/api/v1/visits/"+cv.MdtrtID+"/pay", map[string]any{"channel": "credit", "acct_used_flag": false}
		first = r.post(path, key, body)
		if first.status != 422 || errCode(first.body) != "credit_limit_exceeded" {
			t.Fatalf("credit above the limit: %d %s", first.status, first.body)
		}
		if _, err := r.e.app.Settle.CancelFeeLines(r.cashier, cv.MdtrtID, []string{"1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.e.app.Settle.AddFeeLines(r.cashier, cv.MdtrtID, []settlement.FeeLineInput{{FeedetlSn: "2", CatalogCode: r.extras[0],
			UnitPrice: money.Yuan(10), Quantity: money.MustRatio(1, 1)}}); err != nil {
			t.Fatal(err)
		}
		before = r.ledger()
		retry("credit above the limit", path, key, body, first, func() bool {
			return r.count(`SELECT COUNT(*) FROM payment_orders WHERE mdtrt_id = ?`, cv.MdtrtID) == 0 && len(r.diff(before, moved{})) == 0
		})
		a := r.post(path, r.e.idem(), body)
		if a.status != 201 {
			t.Fatalf("credit with a new key after the bill was corrected: %d %s", a.status, a.body)
		}
	}
	t.Logf("R8: %d business rejections retried with their key after the cause was removed: outcome changed 0 times, side effects 0; a new key then succeeded each time", sticky)
}

// testReverseAfterRefund (R13): part of a payment's out-of-pocket leg is
// refunded in cash, then the settlement is reversed directly: the reversal
// returns the rest of that leg, not the refunded part a second time, so
// the patient's cash account ends where it started.
func testReverseAfterRefund(t *testing.T, r *rig) {
	v := r.visit(r.people[1])
	a := r.post("/api/v1/visits/"+v+"/pay", r.e.idem(), map[string]any{"channel": "counter", "acct_used_flag": false})
	if a.status != 201 {
		t.Fatalf("pay: %d %s", a.status, a.body)
	}
	var o pay.Order
	json.Unmarshal(a.body, &o)
	if o.SelfPay < 3 {
		t.Fatalf("out-of-pocket part %s, nothing to refund", o.SelfPay)
	}
	cash := "cash:" + r.h1
	start := r.ledger()
	amt := o.SelfPay / 3
	if a := r.post("/api/v1/payments/"+o.PayOrdID+"/refunds", r.e.idem(), map[string]any{"refund_no": "rr1", "kind": "cash", "amount": amt}); a.status != 201 {
		t.Fatalf("refund: %d %s", a.status, a.body)
	}
	if a := r.post("/api/v1/settlements/"+o.SetlID+"/reverse", r.e.idem(), nil); a.status != 200 {
		t.Fatalf("reverse: %d %s", a.status, a.body)
	}
	end := r.ledger()
	// The counter's cash account took SelfPay at payment; the refund and
	// the reversal together give back exactly SelfPay.
	if got := end[cash][0] - start[cash][0]; got != o.SelfPay {
		t.Fatalf("refund %s then reversal gave back %s of the patient's cash, want the %s paid", amt, got, o.SelfPay)
	}
	t.Logf("R13: refund %s of %s, then a direct reversal: returned %s in all, double-returned 0", amt, o.SelfPay, end[cash][0]-start[cash][0])
}
