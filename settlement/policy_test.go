package settlement_test

import (
	"bytes"
	"testing"

	"yibao"
	"yibao/money"
	"yibao/policy"
	"yibao/settlement"
)

// draft2027 is the demo policy moved to 2027 with the employee outpatient
// ratio at level 3 raised from 0.60 to 0.70.
func draft(version, from, to string, old, new string) []byte {
	doc := policy.DemoPolicyJSON()
	doc = bytes.Replace(doc, []byte(`"version": "370100-2026.1"`), []byte(`"version": "`+version+`"`), 1)
	doc = bytes.Replace(doc, []byte(`"effective_from": "2026-01-01"`), []byte(`"effective_from": "`+from+`"`), 1)
	doc = bytes.Replace(doc, []byte(`"effective_to": "2026-12-31"`), []byte(`"effective_to": "`+to+`"`), 1)
	if old != "" {
		doc = bytes.Replace(doc, []byte(old), []byte(new), 1)
	}
	return doc
}

func TestPolicyNeedsASecondAdministrator(t *testing.T) {
	w := newWorld(t)
	if !bytes.Contains(policy.DemoPolicyJSON(), []byte(`"version": "370100-2026.1"`)) ||
		!bytes.Contains(policy.DemoPolicyJSON(), []byte(`"1": "0.70", "2": "0.65", "3": "0.60"`)) {
		t.Fatal("the demo policy changed; update this test's replacements")
	}
	doc := draft("370100-2027.1", "2027-01-01", "2027-12-31", `"1": "0.70", "2": "0.65", "3": "0.60"`, `"1": "0.75", "2": "0.70", "3": "0.70"`)
	v, err := w.svc.DraftPolicy(w.adm, doc)
	if err != nil || v.Status != settlement.PolicyDraft {
		t.Fatalf("draft: %v", err)
	}
	steps := []struct {
		name string
		call func() (*settlement.PolicyVersion, error)
		code yibao.Code
		want string
	}{
		{"approve a draft that was not submitted", func() (*settlement.PolicyVersion, error) {
			return w.svc.ApprovePolicy(w.adm2, "370100", "370100-2027.1", "")
		}, yibao.CodePrecondition, ""},
		{"submit", func() (*settlement.PolicyVersion, error) { return w.svc.SubmitPolicy(w.adm, "370100", "370100-2027.1") }, "", settlement.PolicySubmitted},
		{"the author approves their own", func() (*settlement.PolicyVersion, error) {
			return w.svc.ApprovePolicy(w.adm, "370100", "370100-2027.1", "")
		}, yibao.CodeForbidden, ""},
		{"a draft cannot replace a submitted version", func() (*settlement.PolicyVersion, error) { return w.svc.DraftPolicy(w.adm2, doc) }, yibao.CodeConflict, ""},
		{"a second administrator approves", func() (*settlement.PolicyVersion, error) {
			return w.svc.ApprovePolicy(w.adm2, "370100", "370100-2027.1", "checked against the 2027 budget")
		}, "", settlement.PolicyPublished},
		{"an overlapping version is refused at approval", func() (*settlement.PolicyVersion, error) {
			if _, err := w.svc.DraftPolicy(w.adm, draft("370100-2026.2", "2026-07-01", "", "", "")); err != nil {
				return nil, err
			}
			if _, err := w.svc.SubmitPolicy(w.adm, "370100", "370100-2026.2"); err != nil {
				return nil, err
			}
			return w.svc.ApprovePolicy(w.adm2, "370100", "370100-2026.2", "")
		}, yibao.CodeConflict, ""},
		{"an invalid policy names the field", func() (*settlement.PolicyVersion, error) {
			return w.svc.DraftPolicy(w.adm, draft("370100-2028.1", "2028-01-01", "2028-12-31", `"b_self_pay": "0.1"`, `"b_self_pay": "1.5"`))
		}, yibao.CodeInvalid, ""},
		{"a cashier cannot submit", func() (*settlement.PolicyVersion, error) { return w.svc.SubmitPolicy(w.h1, "370100", "370100-2026.2") }, yibao.CodeForbidden, ""},
	}
	for _, s := range steps {
		got, err := s.call()
		if s.code != "" {
			if !yibao.IsCode(err, s.code) {
				t.Fatalf("%s: err = %v, want %s", s.name, err, s.code)
			}
			continue
		}
		if err != nil || got.Status != s.want {
			t.Fatalf("%s: %v %v", s.name, got, err)
		}
	}
	list, err := w.svc.PolicyVersions(w.h1, "370100")
	if err != nil || len(list) != 3 {
		t.Fatalf("versions: %d %v", len(list), err)
	}
	// A visit in 2027 settles under the new version.
	w.now = w.now.AddDate(1, 0, 0)
	v27 := w.visit(w.h1, Active, H1, policy.GeneralOutpatient, "DRUG-A 1000.00 1")
	st, err := w.svc.Settle(w.h1, v27.MdtrtID, settlement.SettleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.PolicyVersion != "370100-2027.1" || st.Result.SetlInfo.HifpPay != money.Yuan(210) {
		t.Fatalf("2027 settlement: %s hifp %s, want 370100-2027.1 and (1000 - 700) x 0.70 = 210", st.PolicyVersion, st.Result.SetlInfo.HifpPay)
	}
}

func TestReplayReportsFundImpact(t *testing.T) {
	w := newWorld(t)
	// Three 2026 bills: two employee outpatient at level 3, one resident.
	for _, b := range []struct{ psn, code string }{{Active, H1}, {Retired, H1}, {Resident, H2}} {
		v := w.visit(w.as(b.code), b.psn, b.code, policy.GeneralOutpatient, "DRUG-A 1000.00 1")
		if _, err := w.svc.Settle(w.as(b.code), v.MdtrtID, settlement.SettleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	doc := draft("370100-2027.1", "2027-01-01", "2027-12-31", `"1": "0.70", "2": "0.65", "3": "0.60"`, `"1": "0.75", "2": "0.70", "3": "0.70"`)
	if _, err := w.svc.DraftPolicy(w.adm, doc); err != nil {
		t.Fatal(err)
	}
	rep, err := w.svc.ReplayPolicy(w.adm, "370100", "370100-2027.1", "2026-06-01", "2026-06-30")
	if err != nil {
		t.Fatal(err)
	}
	// Employees at level 3: active 0.60 → 0.70 (+30), retiree 0.65 → 0.75 (+30).
	if rep.Bills != 3 || rep.Failed != 0 || len(rep.Rows) != 2 {
		t.Fatalf("%+v", rep)
	}
	r := rep.Rows[0]
	if r.Insutype != "310" || r.Level != 3 || r.Bills != 2 || r.FundBefore != money.Yuan(180+195) || r.FundDelta != money.Yuan(60) {
		t.Fatalf("310 level 3 row %+v", r)
	}
	if rep.Rows[1].FundDelta != 0 || rep.Total.FundDelta != money.Yuan(60) {
		t.Fatalf("resident row %+v total %+v", rep.Rows[1], rep.Total)
	}
	if _, err := w.svc.ReplayPolicy(w.h1, "370100", "370100-2027.1", "2026-06-01", "2026-06-30"); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("a cashier replays: %v", err)
	}
	if _, err := w.svc.ReplayPolicy(w.adm, "370100", "nope", "2026-06-01", "2026-06-30"); !yibao.IsCode(err, yibao.CodeNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
}

func TestStatistics(t *testing.T) {
	w := newWorld(t)
	for _, b := range []struct{ psn, code string }{{Active, H1}, {Retired, H2}, {Resident, H2}} {
		v := w.visit(w.as(b.code), b.psn, b.code, policy.GeneralOutpatient, "DRUG-A 1000.00 1")
		if _, err := w.svc.Settle(w.as(b.code), v.MdtrtID, settlement.SettleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := w.svc.Statistics(w.adm, "2026-06-14", "2026-06-15")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Days) != 2 || st.Days[1].Bills != 3 || st.Days[0].Bills != 0 || st.Total.Medfee != money.Yuan(3000) {
		t.Fatalf("%+v", st)
	}
	// 310 at level 3 (180), 310 at level 2 (retiree 0.70 → 210), 390 at level 2 (300).
	if len(st.BySchemeLvl) != 3 || st.Total.Fund != money.Yuan(180+210+300) {
		t.Fatalf("groups %+v total %s", st.BySchemeLvl, st.Total.Fund)
	}
	if _, err := w.svc.Statistics(w.h1, "2026-06-14", "2026-06-15"); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("a cashier reads the dashboard: %v", err)
	}
}
