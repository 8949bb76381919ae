package nhsa_test

import (
	"context"
	"testing"

	"yibao"
	"yibao/money"
	"yibao/pay"
	"yibao/settlement"
)

// R13 on the national interface: a one-code payment partly refunded in
// cash, then its settlement cancelled with 2208, returns only the part not
// yet refunded — the patient's cash account ends where it started.
func TestCancelAfterCashRefund(t *testing.T) {
	e := newEnv(t)
	h1 := "H37010000001"
	ctx := yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalAPIKey, Subject: "k", Role: yibao.RoleHIS, Institution: h1})
	v, err := e.app.Settle.OpenVisit(ctx, settlement.VisitRequest{PsnNo: e.psn, FixmedinsCode: h1, Type: "general_outpatient", DeptCode: "NK", DeptName: "内科"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Settle.AddFeeLines(ctx, v.MdtrtID, []settlement.FeeLineInput{
		{FeedetlSn: "1", CatalogCode: e.drug, UnitPrice: money.Fen(60000), Quantity: money.MustRatio(1, 1)}}); err != nil {
		t.Fatal(err)
	}
	no := false
	o, err := e.app.Pay.PayVisit(ctx, v.MdtrtID, pay.PayRequest{Channel: "counter", UseAccount: &no})
	if err != nil {
		t.Fatal(err)
	}
	if o.SelfPay < 3 {
		t.Fatalf("out-of-pocket %s: nothing to refund", o.SelfPay)
	}
	cash := func() money.Fen {
		b, err := e.app.Ledger.Balance(ctx, "cash:"+h1)
		if err != nil {
			t.Fatal(err)
		}
		return b.Posted
	}
	before := cash()
	amt := o.SelfPay / 3
	if _, err := e.app.Pay.Refund(ctx, o.PayOrdID, pay.RefundRequest{RefundNo: "n1", Kind: "cash", Amount: amt}); err != nil {
		t.Fatal(err)
	}
	e.call(t, e.his, "2208", map[string]any{"data": map[string]string{"setl_id": o.SetlID, "mdtrt_id": v.MdtrtID, "psn_no": e.psn}})
	if got := cash() - before; got != o.SelfPay && got != -o.SelfPay {
		t.Fatalf("refund %s then 2208 returned %s of the patient's cash in all, want the %s paid", amt, got, o.SelfPay)
	}
}
