package app_test

import (
	"context"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/ecert"
	"yibao/ecert/code"
	"yibao/gmcrypto"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/policy"
	"yibao/settlement"
)

// openRegions starts three province nodes and the hub on loopback.
func openRegions(t *testing.T) *app.Regions { return apptest.Regions(t) }

// staff is a cashier of the institution.
func staff(code string) context.Context {
	return yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "cashier." + strings.ToLower(code),
		Role: yibao.RoleCashier, Institution: code})
}

// bill opens a visit of psn at the treating node's first hospital and
// uploads a small bill: one class A drug, one class B item.
func bill(t *testing.T, n *app.RegionNode, psn, visitType string) (*settlement.Visit, context.Context) {
	t.Helper()
	var hosp string
	for _, in := range n.Dataset.Institutions {
		if in.Kind == yibao.KindHospital && in.Level == 3 && hosp == "" {
			hosp = in.Code
		}
	}
	ctx := staff(hosp)
	v, err := n.App.Settle.OpenVisit(ctx, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: hosp, Type: visitType, DeptCode: "A03"})
	if err != nil {
		t.Fatalf("open visit at %s for %s: %v", hosp, psn, err)
	}
	var lines []settlement.FeeLineInput
	for _, c := range n.Dataset.Catalog {
		if len(lines) == 0 && c.Class == yibao.ClassA || len(lines) == 1 && c.Class == yibao.ClassB {
			qty := money.MustRatio(20, 1)
			if visitType == policy.Inpatient {
				qty = money.MustRatio(40, 1) // a stay's worth
			}
			lines = append(lines, settlement.FeeLineInput{FeedetlSn: "L" + string(rune('1'+len(lines))), CatalogCode: c.Code, UnitPrice: 12345, Quantity: qty})
		}
	}
	if _, err := n.App.Settle.AddFeeLines(ctx, v.MdtrtID, lines); err != nil {
		t.Fatal(err)
	}
	if visitType == policy.Inpatient {
		if _, err := n.App.Settle.Discharge(ctx, v.MdtrtID, ""); err != nil {
			t.Fatal(err)
		}
	}
	return v, ctx
}

// persons returns the demo's cross-region test persons of a province:
// four with filings (long_term, referred, temporary, emergency), then
// unregistered ones.
func persons(t *testing.T, n *app.RegionNode) []string {
	p := app.DemoCrossRegionPersons(n.Dataset)
	if len(p) < 6 {
		t.Fatalf("province %s has %d employees for cross-region tests", n.Province, len(p))
	}
	return p
}

type sideState struct{ insured, treating string }

// states reads a transaction's state at both nodes ("" = no row).
func states(t *testing.T, insured, treating *app.RegionNode, txid string) sideState {
	t.Helper()
	var s sideState
	ctx := context.Background()
	if err := insured.App.DB.QueryRow(ctx, `SELECT state FROM xr_insured WHERE txid = ?`, txid).Scan(&s.insured); err != nil && !isNoRows(err) {
		t.Fatal(err)
	}
	if err := treating.App.DB.QueryRow(ctx, `SELECT state FROM xr_treating WHERE setl_id = ?`, txid).Scan(&s.treating); err != nil && !isNoRows(err) {
		t.Fatal(err)
	}
	return s
}

func isNoRows(err error) bool { return err != nil && strings.Contains(err.Error(), "no rows") }

// settle is the cashier's settle at the treating node.
func settle(ctx context.Context, n *app.RegionNode, v *settlement.Visit) (*settlement.Settlement, error) {
	return n.App.Settle.Settle(ctx, v.MdtrtID, settlement.SettleRequest{})
}

// checkAll asserts that, after recovery and delivery, no node has a
// half-done cross-region settlement, every ledger's invariants hold and
// both sides of every hub transaction agree with the hub.
func checkAll(t *testing.T, r *app.Regions) {
	t.Helper()
	ctx := context.Background()
	later := func() time.Time { return time.Now().Add(time.Hour) }
	for round := 0; round < 3; round++ {
		for _, n := range r.Nodes {
			n.App.XR.SetClock(later)
			if _, err := n.App.XR.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := n.App.XR.Report(ctx); err != nil {
				t.Fatal(err)
			}
			n.App.XR.SetClock(time.Now)
		}
		r.Hub.Hub.SetClock(later) // past any backoff
		_, err := r.Hub.Hub.Deliver(ctx)
		r.Hub.Hub.SetClock(time.Now)
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := r.Hub.Hub.Undelivered(ctx); err != nil || n != 0 {
		t.Fatalf("hub: %d undelivered messages (%v)", n, err)
	}
	for _, n := range r.Nodes {
		rep, err := engine.Check(ctx, n.App.DB, time.Now().UnixMicro())
		if err != nil || !rep.OK() {
			t.Fatalf("node %s ledger: %v %v", n.Province, err, rep.Violations)
		}
		var prepared int
		n.App.DB.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM xr_insured WHERE state = 'prepared') + (SELECT COUNT(*) FROM xr_treating WHERE state = 'prepared')`).Scan(&prepared)
		if prepared != 0 {
			t.Errorf("node %s: %d cross-region settlements still prepared", n.Province, prepared)
		}
	}
	txns, err := r.Hub.Hub.Txns(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range txns {
		tr := r.Node(tx.TreatingNode)
		var got sideState
		if ins := r.Node(tx.InsuredNode); ins != nil {
			got = states(t, ins, tr, tx.TxID)
		} else {
			got = states(t, tr, tr, tx.TxID) // a presumed abort names no insured node
			got.insured = ""
		}
		switch tx.State {
		case "committed":
			want := "committed"
			if tx.Reversed {
				want = "reversed"
			}
			if got.insured != want || got.treating != want {
				t.Errorf("txn %s committed (reversed %v) at the hub, insured %q treating %q", tx.TxID, tx.Reversed, got.insured, got.treating)
			}
			st, err := tr.App.Settle.GetSettlement(yibao.WithPrincipal(ctx, yibao.System("test")), tx.TxID)
			if err != nil || (st.Status != settlement.StatusCompleted && st.Status != settlement.StatusReversed) {
				t.Errorf("txn %s committed, settlement %v %v", tx.TxID, st, err)
			}
		case "aborted":
			if got.insured != "" && got.insured != "aborted" || got.treating != "" && got.treating != "aborted" {
				t.Errorf("txn %s aborted at the hub, insured %q treating %q", tx.TxID, got.insured, got.treating)
			}
		default:
			t.Errorf("txn %s still %s at the hub", tx.TxID, tx.State)
		}
	}
}

// TestCrossRegionSettlement settles outpatient and inpatient bills of
// persons insured in Shandong at a Jiangsu hospital: Jiangsu's catalog,
// Shandong's policy, filing and accumulators; both ledgers move.
func TestCrossRegionSettlement(t *testing.T) {
	r := openRegions(t)
	sd, js := r.Node("37"), r.Node("32")
	ps := persons(t, sd)
	cases := []struct {
		name      string
		psn       string
		visit     string
		wantCross string
	}{
		{"long-term resident, outpatient", ps[0], policy.GeneralOutpatient, policy.LongTerm},
		{"referred, inpatient", ps[1], policy.Inpatient, policy.Referred},
		{"temporary, outpatient", ps[2], policy.GeneralOutpatient, policy.Temporary},
		{"emergency filing counts as referred", ps[3], policy.Emergency, policy.Referred},
		{"no filing, inpatient", ps[4], policy.Inpatient, policy.Unregistered},
	}
	sys := yibao.WithPrincipal(context.Background(), yibao.System("test"))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, err := sd.App.Settle.SnapshotInsured(sys, settlement.SnapshotRequest{PsnNo: c.psn, Insutype: "310", Year: time.Now().In(yibao.ChinaTime).Year()})
			if err != nil {
				t.Fatal(err)
			}
			v, ctx := bill(t, js, c.psn, c.visit)
			if v.CrossStatus != c.wantCross || v.CrossScope != "out_of_province" {
				t.Fatalf("visit cross status %s/%s, want %s/out_of_province", v.CrossStatus, v.CrossScope, c.wantCross)
			}
			st, err := settle(ctx, js, v)
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != settlement.StatusCompleted || st.FundPaySumamt <= 0 || st.Result.Breakdown.CrossStatus != c.wantCross {
				t.Fatalf("settlement %s fund %s cross %s", st.Status, st.FundPaySumamt, st.Result.Breakdown.CrossStatus)
			}
			if st.InsuAdmdvs[:2] != "37" || st.Result.Admdvs != st.InsuAdmdvs {
				t.Fatalf("insured region %s", st.InsuAdmdvs)
			}
			waitCommitted(t, sd, js, st.SetlID)
			// The insured node's accumulators moved by exactly the change.
			after, err := sd.App.Settle.SnapshotInsured(sys, settlement.SnapshotRequest{PsnNo: c.psn, Insutype: "310", Year: st.Year})
			if err != nil {
				t.Fatal(err)
			}
			for k, d := range st.Result.Accumulators.Delta {
				if strings.HasSuffix(k, ".month") {
					continue
				}
				if after.Accumulators.Counters[k]-before.Accumulators.Counters[k] != d {
					t.Errorf("counter %s moved %s, want %s", k, after.Accumulators.Counters[k]-before.Accumulators.Counters[k], d)
				}
			}
			// What the insured region's funds and account paid is what the
			// treating node advanced its hospital.
			paid := int64(st.FundPaySumamt + st.AcctPay)
			var fund, acct int64
			sd.App.DB.QueryRow(context.Background(), `SELECT fund_pay, acct_pay FROM xr_insured WHERE txid = ?`, st.SetlID).Scan(&fund, &acct)
			if fund+acct != paid {
				t.Errorf("insured node recorded %d fen, treating node %d", fund+acct, paid)
			}
		})
	}
	checkAll(t, r)
	// The two nodes' positions with each other mirror each other.
	xrJS, err := js.App.Ledger.Balance(sys, ledger.InterRegion("370100").ID)
	if err != nil {
		t.Fatal(err)
	}
	xrSD, err := sd.App.Ledger.Balance(sys, ledger.InterRegion("320100").ID)
	if err != nil {
		t.Fatal(err)
	}
	if xrJS.Posted >= 0 || xrJS.Posted != -xrSD.Posted {
		t.Errorf("Jiangsu's position with Jinan %s, Shandong's with Nanjing %s: want opposite", xrJS.Posted, xrSD.Posted)
	}
}

// waitCommitted waits for the hub's commit to reach the insured node.
func waitCommitted(t *testing.T, insured, treating *app.RegionNode, txid string) {
	t.Helper()
	var s sideState
	for i := 0; i < 100; i++ {
		if s = states(t, insured, treating, txid); s.insured == "committed" && s.treating == "committed" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("transaction %s: %+v, want both committed", txid, s)
}

// TestCrossRegionFaults stops a node or the hub at each point of the
// two-phase commit and checks that, after recovery, no settlement is
// half-done anywhere.
func TestCrossRegionFaults(t *testing.T) {
	r := openRegions(t)
	sd, js, gd := r.Node("37"), r.Node("32"), r.Node("44")
	ps := persons(t, sd)
	ctx := context.Background()

	t.Run("insured node down: the settlement aborts and the bill can settle later", func(t *testing.T) {
		v, cctx := bill(t, js, ps[5], policy.GeneralOutpatient)
		r.StopNode(sd)
		_, err := settle(cctx, js, v)
		if !yibao.IsCode(err, yibao.CodeUnavailable) {
			t.Fatalf("settle with the insured node down: %v", err)
		}
		if err := r.StartNode(ctx, sd); err != nil {
			t.Fatal(err)
		}
		st, err := settle(cctx, js, v)
		if err != nil || st.Status != settlement.StatusCompleted {
			t.Fatalf("settle again: %v", err)
		}
	})

	t.Run("hub stops after its decision: the treating node learns it in recovery", func(t *testing.T) {
		v, cctx := bill(t, js, ps[6], policy.GeneralOutpatient)
		r.Hub.Hub.SetFault(func(point, txid string) error {
			if point == "after-decision" {
				return errors.New("hub stopped")
			}
			return nil
		})
		_, err := settle(cctx, js, v)
		r.Hub.Hub.SetFault(nil)
		if !yibao.IsCode(err, yibao.CodeUnavailable) || !strings.Contains(err.Error(), "cross_region_in_doubt") {
			t.Fatalf("want in doubt, got %v", err)
		}
		checkAll(t, r)
		got, err := js.App.Settle.GetVisit(cctx, v.MdtrtID)
		if err != nil || got.Status != settlement.VisitSettled {
			t.Fatalf("visit after recovery: %v %v", got.Status, err)
		}
	})

	t.Run("treating node dies after preparing: presumed abort, the bill settles again", func(t *testing.T) {
		v, cctx := bill(t, js, ps[7], policy.GeneralOutpatient)
		js.App.Settle.SetCrashPoint(func(string) error { return errors.New("crash") })
		_, err := settle(cctx, js, v)
		if err == nil {
			t.Fatal("settled through a crash point")
		}
		r.StopNode(js)
		if err := r.StartNode(ctx, js); err != nil {
			t.Fatal(err)
		}
		checkAll(t, r)
		got, err := js.App.Settle.GetVisit(cctx, v.MdtrtID)
		if err != nil || got.Status != settlement.VisitOpen {
			t.Fatalf("visit after the abort: %v %v", got.Status, err)
		}
		st, err := settle(cctx, js, v)
		if err != nil || st.Status != settlement.StatusCompleted {
			t.Fatalf("settle again: %v", err)
		}
	})

	t.Run("insured node dies after voting yes: the hub delivers the commit when it is back", func(t *testing.T) {
		v, cctx := bill(t, gd, ps[8], policy.GeneralOutpatient)
		r.Hub.Hub.SetFault(func(point, id string) error {
			if point == "deliver" && strings.HasPrefix(id, "commit:") {
				return errors.New("insured node down")
			}
			return nil
		})
		st, err := settle(cctx, gd, v)
		if err != nil {
			t.Fatal(err)
		}
		if s := states(t, sd, gd, st.SetlID); s.insured != "prepared" || s.treating != "committed" {
			t.Fatalf("before delivery: %+v", s)
		}
		r.StopNode(sd)
		if err := r.StartNode(ctx, sd); err != nil {
			t.Fatal(err)
		}
		r.Hub.Hub.SetFault(nil)
		checkAll(t, r)
	})

	t.Run("a reversal at the treating node gives the insured node its money and accumulators back", func(t *testing.T) {
		v, cctx := bill(t, js, ps[9], policy.GeneralOutpatient)
		st, err := settle(cctx, js, v)
		if err != nil {
			t.Fatal(err)
		}
		r.StopNode(sd) // the compensation waits until Shandong is back
		if _, err := js.App.Settle.Reverse(cctx, st.SetlID); err != nil {
			t.Fatal(err)
		}
		if err := r.StartNode(ctx, sd); err != nil {
			t.Fatal(err)
		}
		checkAll(t, r)
		if s := states(t, sd, js, st.SetlID); s.insured != "reversed" || s.treating != "reversed" {
			t.Fatalf("after the reversal: %+v", s)
		}
	})
	checkAll(t, r)
}

// TestMonthlyClearing settles across all three provinces, clears the
// month and checks that the statement balances and every ledger agrees.
func TestMonthlyClearing(t *testing.T) {
	r := openRegions(t)
	ctx := context.Background()
	var total int64
	for i, from := range r.Nodes {
		to := r.Nodes[(i+1)%len(r.Nodes)]
		ps := persons(t, from)
		for _, psn := range ps[:3] {
			v, cctx := bill(t, to, psn, policy.GeneralOutpatient)
			st, err := settle(cctx, to, v)
			if err != nil {
				t.Fatal(err)
			}
			total += int64(st.FundPaySumamt + st.AcctPay)
		}
	}
	checkAll(t, r)
	month := time.Now().In(yibao.ChinaTime).Format("2006-01")
	st, err := r.Hub.Hub.Clear(ctx, month)
	if err != nil {
		t.Fatal(err)
	}
	if st.Gross != total {
		t.Errorf("statement gross %d, settlements paid %d", st.Gross, total)
	}
	var net int64
	for _, rg := range st.Regions {
		net += rg.Net
	}
	if net != 0 || len(st.Nets) == 0 {
		t.Errorf("regions' nets sum to %d over %d nets", net, len(st.Nets))
	}
	for _, c := range st.Checks {
		if !c.Agrees {
			t.Errorf("node %s disagrees: %v", c.Node, c.Problems)
		}
	}
	checkAll(t, r) // delivers the postings
	sys := yibao.WithPrincipal(ctx, yibao.System("test"))
	for _, n := range r.Nodes {
		ids, err := n.App.DB.Strings(ctx, `SELECT id FROM ledger_accounts WHERE kind = ?`, string(ledger.KindInterRegion))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			b, err := n.App.Ledger.Balance(sys, id)
			if err != nil || b.Posted != 0 {
				t.Errorf("node %s: %s holds %v after clearing (%v)", n.Province, id, b, err)
			}
		}
	}
	// The hub's region accounts hold the nets, and a second run changes nothing.
	again, err := r.Hub.Hub.Clear(ctx, month)
	if err != nil || !again.Posted || again.Gross != st.Gross {
		t.Fatalf("clearing again: %v %+v", err, again)
	}
	// A settlement after the clearing counts in the next month.
	from, to := r.Nodes[0], r.Nodes[1]
	v, cctx := bill(t, to, persons(t, from)[4], policy.GeneralOutpatient)
	s2, err := settle(cctx, to, v)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := r.Hub.Hub.Txn(ctx, s2.SetlID)
	if err != nil || tx.ClrMonth <= month {
		t.Fatalf("a settlement after clearing %s counts in %q (%v)", month, tx.ClrMonth, err)
	}
}

// TestCrossRegionECertificate: a Shandong patient shows the e-certificate
// at a Nanjing hospital. Jiangsu's node cannot verify Shandong's platform,
// so the code goes to Shandong through the hub, is consumed there once,
// and Jiangsu issues its own ecToken for the visit; a replay is refused.
func TestCrossRegionECertificate(t *testing.T) {
	r := openRegions(t)
	sd, js := r.Node("37"), r.Node("32")
	psn := persons(t, sd)[0]
	var idNo, name string
	for _, p := range sd.Dataset.Persons {
		if p.PsnNo == psn {
			idNo, name = p.IDNumber, p.Name
		}
	}
	ch := yibao.WithPrincipal(context.Background(), ecert.OfficialChannelPrincipal())
	act, err := sd.App.Ecert.StartActivation(ch, ecert.ActivationRequest{IDNumber: idNo, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := sd.App.Ecert.DevMessages(yibao.WithPrincipal(context.Background(), yibao.System("test")), 1)
	otp := regexp.MustCompile(`验证码 ([0-9]{6})`).FindStringSubmatch(msgs[0].Text)[1]
	key, _ := gmcrypto.GenerateKey(nil)
	b, err := sd.App.Ecert.ConfirmActivation(ch, act.ActivationID, otp, key.Public().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := hex.DecodeString(b.Credential)
	text, _ := (&code.Device{Key: key, Credential: cred}).Generate(time.Now(), b.StepSeconds, 1)
	var hosp string
	for _, in := range js.Dataset.Institutions {
		if in.Kind == yibao.KindHospital && hosp == "" {
			hosp = in.Code
		}
	}
	cashier := staff(hosp)
	res, err := js.App.Ecert.Resolve(cashier, text)
	if err != nil {
		t.Fatal(err)
	}
	if res.CertID != b.CertID || res.Person.PsnNo != psn || len(res.Coverages) == 0 {
		t.Fatalf("resolution %+v", res)
	}
	if got, _, err := js.App.Ecert.TokenPerson(cashier, res.EcToken); err != nil || got != psn {
		t.Fatalf("the Jiangsu token names %q (%v)", got, err)
	}
	if _, err := js.App.Ecert.Resolve(cashier, text); !yibao.IsCode(err, yibao.CodeConflict) {
		t.Fatalf("a replayed code: %v", err)
	}
	var at string
	sd.App.DB.QueryRow(context.Background(), `SELECT fixmedins_code FROM ecert_used_codes WHERE cert_id = ?`, b.CertID).Scan(&at)
	if at != hosp {
		t.Fatalf("Shandong recorded the use at %q, want %s", at, hosp)
	}
}

// TestHubRefusesOverreach: a node asks only for its own hospitals, begins
// only its own settlements and reads only transactions it is party to.
func TestHubRefusesOverreach(t *testing.T) {
	r := openRegions(t)
	sd, js := r.Node("37"), r.Node("32")
	v, ctx := bill(t, js, persons(t, sd)[0], policy.GeneralOutpatient)
	st, err := settle(ctx, js, v)
	if err != nil {
		t.Fatal(err)
	}
	h := r.Hub.Hub
	bg := context.Background()
	cases := []struct {
		name string
		call func() error
		want yibao.Code
	}{
		{"person for another node's hospital", func() error {
			_, err := h.Forward(bg, "32", "370100", "/xr/v1/person", []byte(`{"psn_no":"`+v.PsnNo+`","insu_admdvs":"370100","treating_admdvs":"440100","fixmedins_code":"H44010000001","date":"2026-12-01"}`))
			return err
		}, yibao.CodeForbidden},
		{"person without a treating region", func() error {
			_, err := h.Forward(bg, "32", "370100", "/xr/v1/person", []byte(`{"psn_no":"`+v.PsnNo+`"}`))
			return err
		}, yibao.CodeForbidden},
		{"a path the hub does not forward", func() error {
			_, err := h.Forward(bg, "32", "370100", "/xr/v1/commit", []byte(`{"txid":"x"}`))
			return err
		}, yibao.CodeInvalid},
		{"begin as another region's treating node", func() error {
			_, err := h.Begin(bg, "32", &settlement.Prepare{TxID: "STX", InsuAdmdvs: "370100", TreatingAdmdvs: "440100"})
			return err
		}, yibao.CodeForbidden},
		{"begin for its own insured", func() error {
			_, err := h.Begin(bg, "32", &settlement.Prepare{TxID: "STY", InsuAdmdvs: "320100", TreatingAdmdvs: "320200"})
			return err
		}, yibao.CodeInvalid},
		{"read a transaction it is not party to", func() error {
			_, err := h.Decision(bg, "44", st.SetlID)
			return err
		}, yibao.CodeNotFound},
		{"reverse another node's settlement", func() error {
			_, err := h.Reverse(bg, "37", st.SetlID)
			return err
		}, yibao.CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); yibao.ErrorCode(err) != c.want {
				t.Fatalf("got %v, want %s", err, c.want)
			}
		})
	}
}
