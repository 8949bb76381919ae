package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"yibao"
	"yibao/money"
	"yibao/pay"
	"yibao/settlement"
)

// payRoutes are the payment-order, wallet-notification and
// reconciliation routes.
func (s *Server) payRoutes() []route {
	return []route{
		{method: "POST", path: "/api/v1/visits/{mdtrt_id}/pay", access: anyone, idempotent: true, h: s.payVisit},
		{method: "GET", path: "/api/v1/payments", access: anyone, h: s.listPayments},
		{method: "GET", path: "/api/v1/payments/{pay_ord_id}", access: anyone, h: s.getPayment},
		{method: "POST", path: "/api/v1/payments/{pay_ord_id}/collect", access: anyone, idempotent: true, h: s.collectPayment},
		{method: "POST", path: "/api/v1/payments/{pay_ord_id}/cancel", access: anyone, idempotent: true, h: s.cancelPayment},
		{method: "POST", path: "/api/v1/payments/{pay_ord_id}/refunds", access: anyone, idempotent: true, h: s.refundPayment},
		{method: "POST", path: "/api/v1/payments/{pay_ord_id}/resolve", access: staff, idempotent: true, h: s.resolvePayment},
		{method: "POST", path: "/api/v1/mobile-payments", access: anyone, idempotent: true, maxBody: 4 << 20, h: s.createMobilePayment},
		{method: "POST", path: "/api/v1/pay/notify/{channel}", access: public, h: s.walletNotify},
		{method: "GET", path: "/api/v1/reconciliations", access: anyone, h: s.listReconciliations},
		{method: "POST", path: "/api/v1/reconciliations", access: staff, h: s.reconcile},
	}
}

func (s *Server) payVisit(c *call) error {
	var in pay.PayRequest
	if err := c.decodeOptional(&in); err != nil {
		return err
	}
	o, err := s.pay.PayVisit(c.r.Context(), c.path("mdtrt_id"), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, o)
}

func (s *Server) listPayments(c *call) error {
	n, err := c.limit()
	if err != nil {
		return err
	}
	out, err := s.pay.List(c.r.Context(), pay.OrderFilter{FixmedinsCode: c.query("fixmedins_code"), Status: c.query("status"), PsnNo: c.query("psn_no"), Limit: n})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

func (s *Server) getPayment(c *call) error {
	o, err := s.pay.Get(c.r.Context(), c.path("pay_ord_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, o)
}

func (s *Server) collectPayment(c *call) error {
	var in pay.CollectRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	o, err := s.pay.Collect(c.r.Context(), c.path("pay_ord_id"), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, o)
}

func (s *Server) cancelPayment(c *call) error {
	o, err := s.pay.Cancel(c.r.Context(), c.path("pay_ord_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, o)
}

func (s *Server) refundPayment(c *call) error {
	var in pay.RefundRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	rf, err := s.pay.Refund(c.r.Context(), c.path("pay_ord_id"), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, rf)
}

func (s *Server) createMobilePayment(c *call) error {
	var in pay.MobileRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	o, err := s.pay.CreateMobile(c.r.Context(), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, o)
}

// walletNotify receives a wallet's callback. The adapter verifies the
// signature (and decrypts); a forged one is counted, answered with a
// failure and never applied. An unknown order is refused so the wallet
// sends it again later.
func (s *Server) walletNotify(c *call) error {
	name := c.path("channel")
	ch, err := s.pay.Channel(name)
	if err != nil {
		return yibao.Errorf(yibao.CodeNotFound, "no payment channel %q", name)
	}
	c.r.Body = io.NopCloser(bytes.NewReader(c.body))
	n, err := ch.ParseNotification(c.r)
	if err != nil {
		s.metrics.forged.WithLabelValues(name).Inc()
		s.log.WarnContext(c.r.Context(), "wallet notification refused", "channel", name, "err", err)
		return yibao.Errorf(yibao.CodeBadSignature, "notification refused: its signature or encryption did not verify")
	}
	err = s.pay.Notify(c.r.Context(), name, n)
	if err != nil && !errors.Is(err, pay.ErrOrphan) {
		s.log.ErrorContext(c.r.Context(), "applying a wallet notification", "channel", name, "id", n.ID, "err", err)
	}
	c.status = http.StatusOK
	if err != nil {
		c.status = http.StatusInternalServerError
	}
	ch.AckNotification(c.w, err)
	return nil
}

func (s *Server) reconcile(c *call) error {
	var in struct {
		Channel string `json:"channel"`
		Date    string `json:"date"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	rep, err := s.pay.Reconcile(c.r.Context(), in.Channel, in.Date)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, map[string]any{"report": rep, "summary": rep.Summary()})
}

func (s *Server) listReconciliations(c *call) error {
	out, err := s.pay.Reconciliations(c.r.Context(), c.query("channel"), c.query("date"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

// --- the patient app's bills and agreements ---

func (s *Server) appPerson(c *call, what string) (string, string, error) {
	id, err := s.appBinding(c)
	if err != nil {
		return "", "", err
	}
	c = s.asOfficialChannel(c)
	psn, _, err := s.ecert.SelfService(c.r.Context(), id, what)
	return psn, id, err
}

func (s *Server) appBills(c *call) error {
	psn, _, err := s.appPerson(c, "bills")
	if err != nil {
		return err
	}
	out, err := s.pay.Bills(c.r.Context(), psn)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

func (s *Server) appBill(c *call) error {
	psn, _, err := s.appPerson(c, "bill")
	if err != nil {
		return err
	}
	o, err := s.pay.Bill(c.r.Context(), psn, c.path("pay_ord_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, o)
}

// appConfirmBill pays a bill pushed to the phone. The page sends a code
// its device key just signed: the same proof as showing the code at a
// counter, consumed once.
func (s *Server) appConfirmBill(c *call) error {
	var in struct {
		Code    string `json:"code"`
		Channel string `json:"channel"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	id, err := s.appBinding(c)
	if err != nil {
		return err
	}
	c = s.asOfficialChannel(c)
	psn, err := s.ecert.Authorize(c.r.Context(), id, in.Code, "pay:"+c.path("pay_ord_id"))
	if err != nil {
		return err
	}
	o, err := s.pay.Confirm(c.r.Context(), psn, c.path("pay_ord_id"), pay.ConfirmRequest{Channel: in.Channel})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, o)
}

func (s *Server) appAgreements(c *call) error {
	psn, _, err := s.appPerson(c, "agreements")
	if err != nil {
		return err
	}
	out, err := s.pay.Agreements(c.r.Context(), psn)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out, "channels": s.pay.Channels()})
}

func (s *Server) appSignAgreement(c *call) error {
	var in struct {
		Channel string    `json:"channel"`
		Limit   money.Fen `json:"limit"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	psn, _, err := s.appPerson(c, "agreement")
	if err != nil {
		return err
	}
	a, err := s.pay.SignAgreement(c.r.Context(), psn, in.Channel, in.Limit)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, a)
}

func (s *Server) appRevokeAgreement(c *call) error {
	psn, _, err := s.appPerson(c, "agreement")
	if err != nil {
		return err
	}
	a, err := s.pay.RevokeAgreement(c.r.Context(), psn, c.path("agreement_no"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, a)
}

func (s *Server) resolvePayment(c *call) error {
	o, err := s.pay.Resolve(c.r.Context(), c.path("pay_ord_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, o)
}

// appSettlements lists the person's own settlements (the receipts), newest
// first, across every institution.
func (s *Server) appSettlements(c *call) error {
	psn, _, err := s.appPerson(c, "settlements")
	if err != nil {
		return err
	}
	ctx := yibao.WithPrincipal(c.r.Context(), yibao.System("app"))
	list, err := s.settle.History(ctx, psn, 20)
	if err != nil {
		return err
	}
	type row struct {
		SetlID        string    `json:"setl_id"`
		FixmedinsCode string    `json:"fixmedins_code"`
		Kind          string    `json:"kind"`
		Status        string    `json:"status"`
		MedfeeSumamt  money.Fen `json:"medfee_sumamt"`
		FundPaySumamt money.Fen `json:"fund_pay_sumamt"`
		AcctPay       money.Fen `json:"acct_pay"`
		PsnCashPay    money.Fen `json:"psn_cash_pay"`
		CreatedAt     string    `json:"created_at"`
	}
	out := []row{}
	for _, st := range list {
		out = append(out, row{st.SetlID, st.FixmedinsCode, st.Kind, st.Status, st.MedfeeSumamt, st.FundPaySumamt, st.AcctPay, st.PsnCashPay,
			st.CreatedAt.In(yibao.ChinaTime).Format("2006-01-02 15:04")})
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

// appReceipt is one of the person's settlements with every fee line and
// its split.
func (s *Server) appReceipt(c *call) error {
	ctx, st, err := s.appOwnSettlement(c)
	if err != nil {
		return err
	}
	inst, err := s.registry.Institution(ctx, st.FixmedinsCode)
	name := st.FixmedinsCode
	if err == nil {
		name = inst.Name
	}
	split := map[string]any{}
	if st.Result != nil {
		for _, l := range st.Result.Lines {
			split[l.ID] = l
		}
	}
	lines := []map[string]any{}
	for _, l := range st.Lines {
		lines = append(lines, map[string]any{"feedetl_sn": l.FeedetlSn, "name": l.Name, "class": l.Class, "unit_price": l.UnitPrice,
			"quantity": l.Quantity, "amount": l.Amount, "split": split[l.FeedetlSn]})
	}
	var si any
	if st.Result != nil {
		si = st.Result.SetlInfo
	}
	return c.json(http.StatusOK, map[string]any{"setl_id": st.SetlID, "institution": name, "fixmedins_code": st.FixmedinsCode,
		"status": st.Status, "kind": st.Kind, "created_at": st.CreatedAt.In(yibao.ChinaTime).Format("2006-01-02 15:04:05"),
		"policy_version": st.PolicyVersion, "setlinfo": si, "fee_lines": lines, "legs": st.Legs})
}

// appOwnSettlement is the settlement named in the path, if it is the app
// session's person's; the context reads as the platform (the session
// already proved who is asking).
func (s *Server) appOwnSettlement(c *call) (context.Context, *settlement.Settlement, error) {
	psn, _, err := s.appPerson(c, "receipt")
	if err != nil {
		return nil, nil, err
	}
	ctx := yibao.WithPrincipal(c.r.Context(), yibao.System("app"))
	st, err := s.settle.GetSettlement(ctx, c.path("setl_id"))
	if err != nil || st.PsnNo != psn {
		return nil, nil, yibao.Errorf(yibao.CodeNotFound, "receipt %s not found", c.path("setl_id"))
	}
	return ctx, st, nil
}
