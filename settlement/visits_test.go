package settlement_test

import (
	"testing"

	"yibao"
	"yibao/money"
	"yibao/policy"
	"yibao/settlement"
)

func TestVisitAndFeeLineErrors(t *testing.T) {
	w := newWorld(t)
	v := w.visit(w.h1, Active, H1, policy.GeneralOutpatient)
	amt := money.Yuan(99)
	line := func(mod func(*settlement.FeeLineInput)) []settlement.FeeLineInput {
		l := settlement.FeeLineInput{FeedetlSn: "X1", CatalogCode: "DRUG-A", UnitPrice: money.Yuan(10), Quantity: money.MustRatio(2, 1)}
		mod(&l)
		return []settlement.FeeLineInput{l}
	}
	cases := []struct {
		name  string
		call  func() error
		code  yibao.Code
		field string
	}{
		{"unknown visit type", func() error {
			_, err := w.svc.OpenVisit(w.h1, settlement.VisitRequest{PsnNo: Active, FixmedinsCode: H1, Type: "spa"})
			return err
		}, yibao.CodeInvalid, "visit_type"},
		{"pharmacy visit at a hospital", func() error {
			_, err := w.svc.OpenVisit(w.h1, settlement.VisitRequest{PsnNo: Active, FixmedinsCode: H1, Type: policy.Pharmacy})
			return err
		}, yibao.CodeInvalid, "visit_type"},
		{"unknown person", func() error {
			_, err := w.svc.OpenVisit(w.h1, settlement.VisitRequest{PsnNo: "37019999999999999999", FixmedinsCode: H1, Type: policy.Emergency})
			return err
		}, yibao.CodeNotFound, ""},
		{"visit in the future", func() error {
			_, err := w.svc.OpenVisit(w.h1, settlement.VisitRequest{PsnNo: Active, FixmedinsCode: H1, Type: policy.Emergency, BeginDate: "2026-07-01"})
			return err
		}, yibao.CodeInvalid, "begin_date"},
		{"not covered on the date", func() error {
			_, err := w.svc.OpenVisit(w.h1, settlement.VisitRequest{PsnNo: Active, FixmedinsCode: H1, Type: policy.Emergency, BeginDate: "2019-05-01"})
			return err
		}, yibao.CodePrecondition, ""},
		{"scheme the person lacks", func() error {
			_, err := w.svc.OpenVisit(w.h1, settlement.VisitRequest{PsnNo: Active, FixmedinsCode: H1, Type: policy.Emergency, Insutype: "390"})
			return err
		}, yibao.CodePrecondition, ""},
		{"line not in the catalog", func() error {
			_, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, line(func(l *settlement.FeeLineInput) { l.CatalogCode = "NOPE" }))
			return err
		}, yibao.CodeInvalid, ""},
		{"catalog item expired on the fee date", func() error {
			_, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, line(func(l *settlement.FeeLineInput) { l.CatalogCode = "OLD-A" }))
			return err
		}, yibao.CodeInvalid, ""},
		{"amount is not price × quantity", func() error {
			_, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, line(func(l *settlement.FeeLineInput) { l.Amount = &amt }))
			return err
		}, yibao.CodeInvalid, ""},
		{"zero price", func() error {
			_, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, line(func(l *settlement.FeeLineInput) { l.UnitPrice = 0 }))
			return err
		}, yibao.CodeInvalid, ""},
		{"zero quantity", func() error {
			_, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, line(func(l *settlement.FeeLineInput) { l.Quantity = money.MustRatio(0, 1) }))
			return err
		}, yibao.CodeInvalid, ""},
		{"fee date before the visit", func() error {
			_, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, line(func(l *settlement.FeeLineInput) { l.FeeDate = "2026-06-01" }))
			return err
		}, yibao.CodeInvalid, ""},
		{"bad serial number", func() error {
			_, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, line(func(l *settlement.FeeLineInput) { l.FeedetlSn = "a b" }))
			return err
		}, yibao.CodeInvalid, ""},
		{"no lines", func() error { _, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, nil); return err }, yibao.CodeInvalid, "lines"},
		{"cancel a line that is not there", func() error { _, err := w.svc.CancelFeeLines(w.h1, v.MdtrtID, []string{"nope"}); return err }, yibao.CodePrecondition, "feedetl_sns"},
		{"discharge an outpatient", func() error { _, err := w.svc.Discharge(w.h1, v.MdtrtID, ""); return err }, yibao.CodePrecondition, ""},
		{"mid-stay for an outpatient", func() error {
			_, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{Kind: settlement.KindMidStay})
			return err
		}, yibao.CodeInvalid, "kind"},
		{"unknown pay mode", func() error {
			if _, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, parseLines(t, []string{"DRUG-A 1.00 1"})); err != nil {
				return err
			}
			_, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{PayMode: "barter"})
			return err
		}, yibao.CodeInvalid, "pay_mode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !yibao.IsCode(err, c.code) {
				t.Fatalf("err = %v, want %s", err, c.code)
			}
			if c.field != "" {
				if e, ok := err.(*yibao.Error); !ok || e.Field != c.field {
					t.Fatalf("field = %v, want %s", err, c.field)
				}
			}
		})
	}
	// A bad upload stores nothing, and lists each bad line.
	bad := append(parseLines(t, []string{"DRUG-A 5.00 1"}), line(func(l *settlement.FeeLineInput) { l.CatalogCode = "NOPE" })...)
	_, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, bad)
	if e, ok := err.(*yibao.Error); !ok || len(e.Issues) != 1 || e.Issues[0].Field != "lines[1].catalog_code" {
		t.Fatalf("issues: %#v", err)
	}
	got, _ := w.svc.GetVisit(w.h1, v.MdtrtID)
	if got.Totals.Lines != 1 { // the "unknown pay mode" step's line only
		t.Fatalf("lines stored: %d", got.Totals.Lines)
	}
	// Same serial and content again is a no-op; other content a conflict.
	again := []settlement.FeeLineInput{{FeedetlSn: got.Lines[0].FeedetlSn, CatalogCode: "DRUG-A", UnitPrice: money.Yuan(1), Quantity: money.MustRatio(1, 1), FeeDate: got.Lines[0].FeeDate}}
	if _, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, again); err != nil {
		t.Fatalf("resend: %v", err)
	}
	again[0].UnitPrice = money.Yuan(2)
	if _, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, again); !yibao.IsCode(err, yibao.CodeConflict) {
		t.Fatalf("changed resend: %v", err)
	}
	// Cancel the line; the visit can then be cancelled.
	if _, err := w.svc.CancelFeeLines(w.h1, v.MdtrtID, []string{got.Lines[0].FeedetlSn}); err != nil {
		t.Fatal(err)
	}
	if c, err := w.svc.CancelVisit(w.h1, v.MdtrtID); err != nil || c.Status != settlement.VisitCancelled {
		t.Fatalf("cancel: %v", err)
	}
	if _, err := w.svc.AddFeeLines(w.h1, v.MdtrtID, parseLines(t, []string{"DRUG-A 1.00 1"})); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("lines on a cancelled visit: %v", err)
	}
}

func TestFamilyMutualAid(t *testing.T) {
	w := newWorld(t)
	// Broke has no money; with Active's consent, the pharmacy bill is paid
	// from Active's account.
	v := w.visit(w.ph, Broke, PH, policy.Pharmacy, "DRUG-A 50.00 1")
	if _, err := w.svc.Settle(w.ph, v.MdtrtID, settlement.SettleRequest{FamilyPsnNo: Active}); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("without consent: %v", err)
	}
	if _, err := w.svc.LinkFamily(w.adm, Resident, Broke, "spouse"); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("a resident has no account to share: %v", err)
	}
	if _, err := w.svc.LinkFamily(w.adm, Active, Broke, "spouse"); err != nil {
		t.Fatal(err)
	}
	st, err := w.svc.Settle(w.ph, v.MdtrtID, settlement.SettleRequest{FamilyPsnNo: Active})
	if err != nil {
		t.Fatal(err)
	}
	if si := st.Result.SetlInfo; si.AcctMulaidPay != money.Yuan(50) || si.PsnCashPay != 0 {
		t.Fatalf("%+v", si)
	}
	if got := w.balance("acct:" + Active); got != money.Yuan(1950) {
		t.Fatalf("holder's account %s", got)
	}
	links, err := w.svc.FamilyLinks(w.adm, Active)
	if err != nil || len(links) != 1 || links[0].Relation != "spouse" {
		t.Fatalf("links %v %v", links, err)
	}
	if err := w.svc.UnlinkFamily(w.adm, Active, Broke); err != nil {
		t.Fatal(err)
	}
	v2 := w.visit(w.ph, Broke, PH, policy.Pharmacy, "DRUG-A 50.00 1")
	if _, err := w.svc.Settle(w.ph, v2.MdtrtID, settlement.SettleRequest{FamilyPsnNo: Active}); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("after revoking: %v", err)
	}
	w.checkLedger()
}

func TestAppointmentSlots(t *testing.T) {
	w := newWorld(t)
	req := settlement.ScheduleRequest{FixmedinsCode: H1, DeptCode: "XNK", DeptName: "心内科", DoctorName: "刘医生", Date: "2026-06-15"}
	req.Periods = append(req.Periods, struct {
		Start    string `json:"start"`
		End      string `json:"end"`
		Capacity int    `json:"capacity"`
	}{"08:00", "09:00", 2})
	if _, err := w.svc.PublishSchedule(w.h2, req); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("another hospital publishes: %v", err)
	}
	slots, err := w.svc.PublishSchedule(w.h1, req)
	if err != nil {
		t.Fatal(err)
	}
	id := slots[0].SlotID
	for i := range 4 { // the first booking is cancelled, two fill the slot, the fourth finds it full
		v, err := w.svc.OpenVisit(w.h1, settlement.VisitRequest{PsnNo: Active, FixmedinsCode: H1, Type: policy.GeneralOutpatient, SlotID: id})
		if i < 3 && (err != nil || v.DeptCode != "XNK") {
			t.Fatalf("booking %d: %v", i, err)
		}
		if i == 3 && !yibao.IsCode(err, yibao.CodeConflict) {
			t.Fatalf("third live booking of a 2-place slot: %v", err)
		}
		if i == 0 {
			if _, err := w.svc.CancelVisit(w.h1, v.MdtrtID); err != nil {
				t.Fatal(err)
			}
			if list, _ := w.svc.Slots(w.h1, H1, "2026-06-15", "XNK"); list[0].Left != 2 {
				t.Fatalf("cancelling did not free the place: %+v", list[0])
			}
		}
	}
	list, err := w.svc.Slots(w.h2, H1, "2026-06-15", "")
	if err != nil || len(list) != 1 || list[0].Left != 0 {
		t.Fatalf("slots %+v %v", list, err)
	}
}
