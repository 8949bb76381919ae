package banksim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao/credit/bankapi"
	"yibao/gmcrypto"
)

var (
	bankKey     = gmcrypto.DeterministicKey([]byte("banksim-test/bank"))
	platformKey = gmcrypto.DeterministicKey([]byte("banksim-test/platform"))
)

// startBank runs a simulated bank reporting to callbackURL and returns it
// with a platform client.
func startBank(t *testing.T, callbackURL string) (*Server, *bankapi.Client) {
	t.Helper()
	srv, err := Start(Options{BankCode: "yhbank", BankKeyID: "bank-k1", Key: bankKey, PlatformKeyID: "plat-k1",
		PlatformKey: platformKey.Public(), CallbackURL: callbackURL}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, &bankapi.Client{BaseURL: srv.URL, KeyID: "plat-k1", Key: platformKey, BankKeyID: "bank-k1", BankKey: bankKey.Public()}
}

var consentAt = time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)

func applyReq(id, agreementNo, psnRef string, requested int64) bankapi.ApplyRequest {
	return bankapi.ApplyRequest{ApplyID: id, AgreementNo: agreementNo, BankCode: "yhbank", PsnRef: psnRef, RequestedLimitFen: requested,
		Scene: bankapi.SceneAll, ConsentVersion: "credit-v1", ConsentAt: consentAt}
}

// approved opens an agreement with the given limit band score.
func approved(t *testing.T, srv *Server, c *bankapi.Client, agreementNo string, score int) *bankapi.Decision {
	t.Helper()
	srv.Sim.SetScore("P-"+agreementNo, score)
	d, err := c.Apply(context.Background(), applyReq("AP-"+agreementNo, agreementNo, "P-"+agreementNo, 0))
	if err != nil || d.Status != bankapi.DecisionApproved {
		t.Fatalf("apply: %+v, %v", d, err)
	}
	return d
}

func wantError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var e *bankapi.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("err = %v, want %d %s", err, status, code)
	}
	if bankapi.Unknown(err) {
		t.Fatalf("a definite refusal counted as an unknown outcome: %v", err)
	}
}

func TestScore(t *testing.T) {
	seen := map[int]bool{}
	for _, ref := range []string{"a", "b", "c", "PSN0001", "PSN0002", "PSN0003", "PSN0004", "PSN0005"} {
		sc := Score(ref)
		if sc < 560 || sc >= 800 || sc != Score(ref) {
			t.Fatalf("Score(%q) = %d", ref, sc)
		}
		seen[sc] = true
	}
	if len(seen) < 4 {
		t.Fatalf("scores hardly vary: %v", seen)
	}
	h := gmcrypto.SM3([]byte("PSN0001"))
	if want := 560 + (int(h[0])<<8|int(h[1]))%240; Score("PSN0001") != want {
		t.Fatalf("Score = %d, want %d", Score("PSN0001"), want)
	}
}

func TestApplyByScore(t *testing.T) {
	srv, c := startBank(t, "")
	tests := []struct {
		name      string
		score     int
		requested int64
		status    string
		limit     int64
		reason    string
	}{
		{"below threshold", 599, 0, bankapi.DecisionDeclined, 0, "score_below_threshold"},
		{"lowest band", 600, 0, bankapi.DecisionApproved, 50000, ""},
		{"lowest band top", 649, 0, bankapi.DecisionApproved, 50000, ""},
		{"middle band", 650, 0, bankapi.DecisionApproved, 200000, ""},
		{"top band", 700, 0, bankapi.DecisionApproved, 500000, ""},
		{"capped by the request", 799, 100000, bankapi.DecisionApproved, 100000, ""},
		{"request above the band", 620, 900000, bankapi.DecisionApproved, 50000, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := "PSN-" + tt.name
			srv.Sim.SetScore(ref, tt.score)
			no := "AG" + string(rune('A'+i))
			d, err := c.Apply(context.Background(), applyReq("AP"+no, no, ref, tt.requested))
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != tt.status || d.LimitFen != tt.limit || d.Reason != tt.reason || d.Score != tt.score {
				t.Fatalf("decision %+v; want %s %d %q", d, tt.status, tt.limit, tt.reason)
			}
			if tt.status == bankapi.DecisionDeclined {
				if d.BankAgreementID != "" {
					t.Fatalf("declined with an agreement %s", d.BankAgreementID)
				}
				return
			}
			if len(d.BankAgreementID) != 15 || !strings.HasPrefix(d.BankAgreementID, "BKA") || d.InterestFreeDays != 10 {
				t.Fatalf("agreement id %q, interest-free days %d", d.BankAgreementID, d.InterestFreeDays)
			}
			st, err := c.Agreement(context.Background(), d.BankAgreementID)
			if err != nil || st.AgreementNo != no || st.LimitFen != tt.limit || st.Status != bankapi.StatusActive || st.OutstandingFen != 0 {
				t.Fatalf("agreement %+v, %v", st, err)
			}
		})
	}

	// Without an override the deterministic score decides.
	ref := "PSN-default"
	d, err := c.Apply(context.Background(), applyReq("AP-default", "AG-default", ref, 0))
	if err != nil || d.Score != Score(ref) || d.LimitFen != BandLimit(Score(ref)) {
		t.Fatalf("default score: %+v, %v (Score %d)", d, err, Score(ref))
	}

	srv.Sim.SetFaults(Faults{DeclineAll: true})
	srv.Sim.SetScore("PSN-rich", 790)
	d, err = c.Apply(context.Background(), applyReq("AP-declineall", "AG-declineall", "PSN-rich", 0))
	if err != nil || d.Status != bankapi.DecisionDeclined || d.Reason != "declined_by_bank" {
		t.Fatalf("DeclineAll: %+v, %v", d, err)
	}

	_, err = c.Apply(context.Background(), bankapi.ApplyRequest{ApplyID: "AP-noconsent", AgreementNo: "AGX", PsnRef: "P", Scene: "all"})
	wantError(t, err, 400, bankapi.CodeInvalidRequest)
	_, err = c.Agreement(context.Background(), "BKA999999999999")
	wantError(t, err, 404, bankapi.CodeNotFound)
}

func TestApplyIdempotent(t *testing.T) {
	srv, c := startBank(t, "")
	srv.Sim.SetScore("P1", 680)
	a := applyReq("AP1", "AG1", "P1", 0)
	first, err := c.Apply(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Apply(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if again.BankAgreementID != first.BankAgreementID || !again.DecidedAt.Equal(first.DecidedAt) || again.LimitFen != 200000 {
		t.Fatalf("repeated apply: %+v, first %+v", again, first)
	}
	changed := a
	changed.RequestedLimitFen = 100
	_, err = c.Apply(context.Background(), changed)
	wantError(t, err, 409, bankapi.CodeDuplicateApplyID)
	if st := srv.Sim.State(); len(st.Applications) != 1 || len(st.Agreements) != 1 {
		t.Fatalf("state after repeats: %d applications, %d agreements", len(st.Applications), len(st.Agreements))
	}

	// A second application for the same live agreement gets that agreement.
	second, err := c.Apply(context.Background(), applyReq("AP2", "AG1", "P1", 0))
	if err != nil || second.BankAgreementID != first.BankAgreementID {
		t.Fatalf("second application: %+v, %v", second, err)
	}
}

func TestTimeoutAfterApprove(t *testing.T) {
	srv, c := startBank(t, "")
	srv.Sim.SetScore("P1", 710)
	srv.Sim.SetFaults(Faults{TimeoutAfterApproveNext: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Apply(ctx, applyReq("AP1", "AG1", "P1", 0))
	if err == nil || !bankapi.Unknown(err) {
		t.Fatalf("apply during the fault: %v; want an unknown outcome", err)
	}
	d, err := c.Application(context.Background(), "AP1")
	if err != nil || d.Status != bankapi.DecisionApproved || d.LimitFen != 500000 {
		t.Fatalf("queried decision: %+v, %v", d, err)
	}
	// The fault wore off: the retry answers at once, with the same decision.
	d2, err := c.Apply(context.Background(), applyReq("AP1", "AG1", "P1", 0))
	if err != nil || d2.BankAgreementID != d.BankAgreementID {
		t.Fatalf("retry: %+v, %v", d2, err)
	}
	_, err = c.Application(context.Background(), "AP-never")
	wantError(t, err, 404, bankapi.CodeNotFound)
}

func TestDraws(t *testing.T) {
	srv, c := startBank(t, "")
	d := approved(t, srv, c, "AG1", 620) // 50000 fen
	at := time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)
	draw := func(id string, amount int64) bankapi.DrawNotice {
		return bankapi.DrawNotice{DrawID: id, AgreementNo: "AG1", BankAgreementID: d.BankAgreementID, FixmedinsCode: "H11010100001",
			SetlID: "S-" + id, AmountFen: amount, At: at, DueDate: "2026-03-12"}
	}
	unknown := draw("D-unknown", 100)
	unknown.BankAgreementID = "BKA000000000000"
	mismatched := draw("D-mismatch", 100)
	mismatched.AgreementNo = "AG2"
	tests := []struct {
		name        string
		n           bankapi.DrawNotice
		code        string // "" accepted
		outstanding int64
	}{
		{"first", draw("D1", 30000), "", 30000},
		{"repeated", draw("D1", 30000), "", 30000},
		{"same id, other amount", draw("D1", 30001), bankapi.CodeDuplicateDrawID, 30000},
		{"unknown agreement", unknown, bankapi.CodeAgreementNotActive, 30000},
		{"agreement number mismatch", mismatched, bankapi.CodeAgreementNotActive, 30000},
		{"over the limit", draw("D2", 20001), bankapi.CodeLimitExceeded, 30000},
		{"up to the limit", draw("D3", 20000), "", 50000},
		{"non-positive", draw("D4", 0), bankapi.CodeInvalidRequest, 50000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Draw(context.Background(), tt.n)
			if tt.code == "" && err != nil {
				t.Fatal(err)
			}
			if tt.code != "" {
				var e *bankapi.Error
				if !errors.As(err, &e) || e.Code != tt.code || bankapi.Unknown(err) {
					t.Fatalf("err = %v, want %s", err, tt.code)
				}
			}
			st, _ := srv.Sim.Agreement("AG1")
			if st.OutstandingFen != tt.outstanding {
				t.Fatalf("outstanding %d, want %d", st.OutstandingFen, tt.outstanding)
			}
		})
	}
	if n := len(srv.Sim.State().Draws); n != 2 {
		t.Fatalf("%d draws recorded, want 2", n)
	}

	// Repayments: idempotent, and booked even beyond the outstanding amount.
	rp := bankapi.Repayment{RepayID: "R1", AgreementNo: "AG1", BankAgreementID: d.BankAgreementID, Channel: bankapi.ChannelWechat, AmountFen: 60000, PaidAt: at}
	for range 2 {
		if err := c.Repaid(context.Background(), rp); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := srv.Sim.Agreement("AG1"); st.OutstandingFen != -10000 {
		t.Fatalf("outstanding after an overpayment %d, want -10000", st.OutstandingFen)
	}
	rp.AmountFen = 1
	wantError(t, c.Repaid(context.Background(), rp), 409, bankapi.CodeDuplicateRepayID)

	// Status reports are recorded.
	rep := bankapi.StatusReport{AgreementNo: "AG1", BankAgreementID: d.BankAgreementID, Status: bankapi.StatusOverdue, OutstandingFen: 100, OverdueFen: 100, DaysOverdue: 3, At: at}
	if err := c.Report(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	if r := srv.Sim.State().Reports; len(r) != 1 || r[0].DaysOverdue != 3 {
		t.Fatalf("reports %+v", r)
	}

	// A suspended agreement takes no draws.
	if err := srv.Sim.Suspend(context.Background(), "AG1", "fraud check"); !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("suspend without a callback URL: %v", err)
	}
	wantError(t, c.Draw(context.Background(), draw("D5", 1)), 422, bankapi.CodeAgreementNotActive)
}

func TestSettlementFile(t *testing.T) {
	srv, c := startBank(t, "")
	a1 := approved(t, srv, c, "AG1", 720)
	a2 := approved(t, srv, c, "AG2", 720)
	ctx := context.Background()
	// 2026-03-02 in China time runs from 2026-03-01T16:00Z to 2026-03-02T16:00Z.
	notices := []bankapi.DrawNotice{
		{DrawID: "D-before", AgreementNo: "AG1", BankAgreementID: a1.BankAgreementID, FixmedinsCode: "H1", AmountFen: 700, At: time.Date(2026, 3, 1, 15, 59, 59, 0, time.UTC)},
		{DrawID: "D1", AgreementNo: "AG1", BankAgreementID: a1.BankAgreementID, FixmedinsCode: "H1", AmountFen: 1000, At: time.Date(2026, 3, 1, 16, 0, 0, 0, time.UTC)},
		{DrawID: "D2", AgreementNo: "AG2", BankAgreementID: a2.BankAgreementID, FixmedinsCode: "H2", AmountFen: 2500, At: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)},
		{DrawID: "D3", AgreementNo: "AG2", BankAgreementID: a2.BankAgreementID, FixmedinsCode: "H1", AmountFen: 300, At: time.Date(2026, 3, 2, 15, 59, 0, 0, time.UTC)},
		{DrawID: "D-after", AgreementNo: "AG2", BankAgreementID: a2.BankAgreementID, FixmedinsCode: "H2", AmountFen: 900, At: time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)},
	}
	for _, n := range notices {
		if err := c.Draw(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Repaid(ctx, bankapi.Repayment{RepayID: "R1", AgreementNo: "AG1", BankAgreementID: a1.BankAgreementID, Channel: bankapi.ChannelAlipay,
		AmountFen: 400, PaidAt: time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	// The bank's own counter repayment is not one the platform collected.
	if _, err := srv.Sim.RepayAtCounter(ctx, "AG2", 100); !errors.Is(err, ErrNotDelivered) {
		t.Fatal(err)
	}
	file := bankapi.DayFile{BankCode: "yhbank", Date: "2026-03-02"}

	type payout struct {
		code   string
		amount int64
	}
	tests := []struct {
		name    string
		faults  Faults
		ids     []string
		payouts []payout
		net     int64
	}{
		{"faithful", Faults{}, []string{"D1", "D2", "D3", "R1"}, []payout{{"H1", 1300}, {"H2", 2500}}, 3400},
		{"dropped rows", Faults{DayDrop: []string{"D2", "R1"}}, []string{"D1", "D3"}, []payout{{"H1", 1300}}, 1300},
		{"extra rows", Faults{DayExtra: 2}, []string{"D1", "D2", "D3", "R1", "EXTRA-1", "EXTRA-2"}, []payout{{"H1", 1300 + 2468}, {"H2", 2500}}, 3400 + 2468},
		{"amount deltas", Faults{DayAmountDelta: map[string]int64{"D2": -500, "R1": 50}}, []string{"D1", "D2", "D3", "R1"}, []payout{{"H1", 1300}, {"H2", 2000}}, 2850},
	}
	ids := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Sim.SetFaults(tt.faults)
			rep, err := c.SubmitDay(ctx, file)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rep.Rows {
				got = append(got, r.ID)
				if strings.HasPrefix(r.ID, "EXTRA-") && (r.AmountFen != 1234 || r.FixmedinsCode != "H1" || r.Kind != bankapi.RowDraw) {
					t.Errorf("extra row %+v", r)
				}
			}
			if !slices.Equal(got, tt.ids) {
				t.Fatalf("rows %v, want %v", got, tt.ids)
			}
			var gotPayouts []payout
			for _, p := range rep.Payouts {
				gotPayouts = append(gotPayouts, payout{p.FixmedinsCode, p.AmountFen})
				if prev, seen := ids[p.FixmedinsCode]; seen && prev != p.PayoutID {
					t.Errorf("payout id for %s changed on resubmission: %s then %s", p.FixmedinsCode, prev, p.PayoutID)
				}
				ids[p.FixmedinsCode] = p.PayoutID
			}
			if !slices.Equal(gotPayouts, tt.payouts) || rep.NetFen != tt.net || rep.Date != "2026-03-02" {
				t.Fatalf("payouts %v net %d; want %v net %d", gotPayouts, rep.NetFen, tt.payouts, tt.net)
			}
		})
	}
	_, err := c.SubmitDay(ctx, bankapi.DayFile{BankCode: "yhbank", Date: "2026-3-2"})
	wantError(t, err, 400, bankapi.CodeInvalidRequest)
}

// platform is a stand-in for the platform's notify endpoint.
type platform struct {
	mu       sync.Mutex
	got      []bankapi.Callback
	refused  []error
	failNext int
	nonces   bankapi.NonceCache
}

func (p *platform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failNext > 0 {
		p.failNext--
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	cb, err := bankapi.ParseCallback(r, body, "bank-k1", bankKey.Public(), time.Now(), &p.nonces)
	if err != nil {
		p.refused = append(p.refused, err)
		e := bankapi.Refusal(err)
		w.WriteHeader(e.Status)
		json.NewEncoder(w).Encode(e)
		return
	}
	p.got = append(p.got, *cb)
	w.Write([]byte(`{"code":"SUCCESS"}`))
}

func (p *platform) callbacks() []bankapi.Callback {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

func TestCallbacks(t *testing.T) {
	saved := retryBackoff
	retryBackoff = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
	defer func() { retryBackoff = saved }()
	p := &platform{}
	hp := httptest.NewServer(p)
	defer hp.Close()
	notifyURL := hp.URL + "/api/v1/credit/notify/yhbank"
	srv, c := startBank(t, notifyURL)
	d := approved(t, srv, c, "AG1", 660)
	ctx := context.Background()
	if err := c.Draw(ctx, bankapi.DrawNotice{DrawID: "D1", AgreementNo: "AG1", BankAgreementID: d.BankAgreementID, FixmedinsCode: "H1", AmountFen: 8000, At: time.Now()}); err != nil {
		t.Fatal(err)
	}

	rp, err := srv.Sim.RepayAtCounter(ctx, "AG1", 3000)
	if err != nil {
		t.Fatal(err)
	}
	got := p.callbacks()
	if len(got) != 1 {
		t.Fatalf("%d callbacks, want 1", len(got))
	}
	cb := got[0]
	if cb.Type != bankapi.CallbackRepayment || cb.EventID != rp.RepayID || cb.Repayment == nil || cb.Repayment.AmountFen != 3000 ||
		cb.Repayment.Channel != bankapi.ChannelCounter || cb.BankAgreementID != d.BankAgreementID || cb.AgreementNo != "AG1" {
		t.Fatalf("callback %+v", cb)
	}
	if st, _ := srv.Sim.Agreement("AG1"); st.OutstandingFen != 5000 {
		t.Fatalf("outstanding %d, want 5000", st.OutstandingFen)
	}

	// Duplicates: the same event delivered three times, each validly signed.
	srv.Sim.SetFaults(Faults{DuplicateCallbacks: 2})
	rp2, err := srv.Sim.RepayAtCounter(ctx, "AG1", 1000)
	if err != nil {
		t.Fatal(err)
	}
	got = p.callbacks()[1:]
	if len(got) != 3 {
		t.Fatalf("%d deliveries, want 3", len(got))
	}
	for _, cb := range got {
		if cb.EventID != rp2.RepayID {
			t.Fatalf("duplicate of another event: %+v", cb)
		}
	}
	srv.Sim.SetFaults(Faults{})

	// Limit changes, suspension, reinstatement and closing are reported.
	steps := []struct {
		do   func() error
		typ  string
		want func(cb bankapi.Callback) bool
	}{
		{func() error { return srv.Sim.ChangeLimit(ctx, "AG1", 80000) }, bankapi.CallbackLimitChanged, func(cb bankapi.Callback) bool { return cb.LimitFen == 80000 }},
		{func() error { return srv.Sim.Suspend(ctx, "AG1", "overdue elsewhere") }, bankapi.CallbackSuspended, func(cb bankapi.Callback) bool { return cb.Reason == "overdue elsewhere" }},
		{func() error { return srv.Sim.Reinstate(ctx, "AG1") }, bankapi.CallbackReinstated, func(bankapi.Callback) bool { return true }},
		{func() error { return srv.Sim.CloseAgreement(ctx, "AG1", "customer request") }, bankapi.CallbackClosed, func(bankapi.Callback) bool { return true }},
	}
	for _, s := range steps {
		n := len(p.callbacks())
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.typ, err)
		}
		all := p.callbacks()
		if len(all) != n+1 || all[n].Type != s.typ || !s.want(all[n]) || all[n].EventID == "" {
			t.Fatalf("%s: callbacks %+v", s.typ, all[n:])
		}
	}
	if st, _ := srv.Sim.Agreement("AG1"); st.Status != bankapi.StatusClosed || st.LimitFen != 80000 {
		t.Fatalf("agreement after the actions: %+v", st)
	}
	if err := srv.Sim.Reinstate(ctx, "AG1"); !errors.Is(err, ErrAgreementClosed) {
		t.Fatalf("reinstating a closed agreement: %v", err)
	}
	if _, err := srv.Sim.RepayAtCounter(ctx, "AG-none", 1); !errors.Is(err, ErrUnknownAgreement) {
		t.Fatalf("unknown agreement: %v", err)
	}

	// A platform down for two attempts still gets the callback.
	p.mu.Lock()
	p.failNext = 2
	p.mu.Unlock()
	if _, err := srv.Sim.RepayAtCounter(ctx, "AG1", 10); err != nil {
		t.Fatalf("after retries: %v", err)
	}
	// Down for good: the repayment stands, the error says so.
	p.mu.Lock()
	p.failNext = 100
	p.mu.Unlock()
	rp3, err := srv.Sim.RepayAtCounter(ctx, "AG1", 20)
	if !errors.Is(err, ErrNotDelivered) || rp3 == nil {
		t.Fatalf("undeliverable: %v, %v", rp3, err)
	}
	st := srv.Sim.State()
	last := st.Callbacks[len(st.Callbacks)-1]
	if last.Delivered || last.Attempts != 4 || st.Repayments[len(st.Repayments)-1].RepayID != rp3.RepayID {
		t.Fatalf("last callback %+v", last)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.refused) != 0 {
		t.Fatalf("the platform refused callbacks: %v", p.refused)
	}
}

func TestRequestsMustBeSigned(t *testing.T) {
	srv, c := startBank(t, "")
	ctx := context.Background()

	wrong := *c
	wrong.Key = gmcrypto.DeterministicKey([]byte("someone else"))
	_, err := wrong.Application(ctx, "AP1")
	wantError(t, err, 401, bankapi.CodeBadSignature)

	wrong = *c
	wrong.KeyID = "other-key"
	_, err = wrong.Application(ctx, "AP1")
	wantError(t, err, 401, bankapi.CodeBadSignature)

	// A captured request sent again is refused.
	req, _ := http.NewRequest("GET", srv.URL+"/credit/applications/AP1", nil)
	if err := bankapi.SignRequest(req, nil, "plat-k1", platformKey); err != nil {
		t.Fatal(err)
	}
	codes := []string{}
	for range 2 {
		resp, err := http.DefaultClient.Do(req.Clone(ctx))
		if err != nil {
			t.Fatal(err)
		}
		var e bankapi.Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		codes = append(codes, e.Code)
		if resp.Header.Get(bankapi.HeaderSignature) == "" {
			t.Fatal("an unsigned answer")
		}
	}
	if !slices.Equal(codes, []string{bankapi.CodeNotFound, bankapi.CodeReplayed}) {
		t.Fatalf("codes %v", codes)
	}

	// An old request is refused.
	req, _ = http.NewRequest("POST", srv.URL+"/credit/status", bytes.NewReader([]byte(`{}`)))
	bankapi.SignRequest(req, []byte(`{}`), "plat-k1", platformKey)
	req.Header.Set(bankapi.HeaderTimestamp, "1700000000")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e bankapi.Error
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 401 || e.Code != bankapi.CodeStaleTimestamp {
		t.Fatalf("stale: %d %s", resp.StatusCode, e.Code)
	}
}

func TestAdminEndpoints(t *testing.T) {
	srv, c := startBank(t, "")
	approved(t, srv, c, "AG1", 650)
	get := func(path string) (int, []byte) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := get("/"); code != 200 || !strings.Contains(string(b), "not a real bank") {
		t.Fatalf("GET / %d %s", code, b)
	}
	post := func(path, body string) (int, map[string]any) {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, out := post("/sim/agreements/AG1/limit", `{"limit_fen": 12345}`); code != 200 || out["delivered"] != false {
		t.Fatalf("limit: %d %v", code, out)
	}
	if code, _ := post("/sim/agreements/AG-none/suspend", `{}`); code != 404 {
		t.Fatalf("unknown agreement: %d", code)
	}
	if code, _ := post("/sim/faults", `{"day_extra": 3}`); code != 200 || srv.Sim.Faults().DayExtra != 3 {
		t.Fatalf("faults: %d %+v", code, srv.Sim.Faults())
	}
	code, b := get("/sim/state")
	var st State
	if err := json.Unmarshal(b, &st); code != 200 || err != nil {
		t.Fatalf("state: %d %v", code, err)
	}
	if len(st.Agreements) != 1 || st.Agreements[0].LimitFen != 12345 || st.Faults.DayExtra != 3 || st.BankCode != "yhbank" {
		t.Fatalf("state %+v", st)
	}

	// Not from loopback: refused.
	r := httptest.NewRequest("GET", "/sim/state", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	w := httptest.NewRecorder()
	srv.Sim.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("remote admin: %d", w.Code)
	}
}

func TestLoadKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bank-keys")
	k1, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "bank.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bank.pem: %v %v", fi, err)
	}
	k2, err := LoadKeys(dir)
	if err != nil || !k2.Bank.Public().Equal(k1.Bank.Public()) {
		t.Fatalf("reloaded a different key: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "bank-public.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := gmcrypto.ParsePublicKeyPEM(b)
	if err != nil || !pub.Equal(k1.Bank.Public()) {
		t.Fatalf("bank-public.pem: %v", err)
	}
}
