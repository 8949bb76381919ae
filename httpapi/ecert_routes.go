package httpapi

import (
	"encoding/hex"
	"net/http"
	"time"

	"yibao"
	"yibao/ecert"
	"yibao/ecert/code"
)

// ecertRoutes are the e-certificate routes.
func (s *Server) ecertRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/ecert/directory", access: public, h: s.ecertDirectory},
		{method: "GET", path: "/api/v1/ecert/channels", access: anyone, h: s.listChannels},
		{method: "POST", path: "/api/v1/ecert/channels", access: staff, idempotent: true, dual: true, h: s.createChannel},
		{method: "PUT", path: "/api/v1/ecert/channels/{channel_id}/status", access: staff, idempotent: true, dual: true, h: s.setChannelStatus},
		{method: "POST", path: "/api/v1/ecert/activations", access: anyone, idempotent: true, h: s.startActivation},
		{method: "POST", path: "/api/v1/ecert/activations/{activation_id}/confirm", access: anyone, idempotent: true, h: s.confirmActivation},
		{method: "GET", path: "/api/v1/ecert/certs/{cert_id}/bindings", access: anyone, h: s.listBindings},
		{method: "POST", path: "/api/v1/ecert/certs/{cert_id}/revoke", access: anyone, idempotent: true, h: s.revokeBindings},
		{method: "POST", path: "/api/v1/ecert/resolve", access: anyone, idempotent: true, h: s.resolveCode},
		{method: "POST", path: "/api/v1/ecert/render", access: anyone, h: s.renderCode},
		{method: "GET", path: "/api/v1/ecert/bindings/{binding_id}/summary", access: anyone, h: s.ecertSummary},
		{method: "GET", path: "/api/v1/ecert/dev/sms", access: staff, h: s.devSMS},
	}
}

func (s *Server) ecertDirectory(c *call) error { return c.json(http.StatusOK, s.ecert.Directory()) }

func (s *Server) listChannels(c *call) error {
	list, err := s.ecert.Channels(c.r.Context())
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) createChannel(c *call) error {
	var in struct {
		ChannelID string `json:"channel_id"`
		Name      string `json:"name"`
		PublicKey string `json:"public_key"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	pub, err := hex.DecodeString(in.PublicKey)
	if err != nil {
		return yibao.FieldError("public_key", "want hex")
	}
	ch, err := s.ecert.CreateChannel(c.r.Context(), in.ChannelID, in.Name, pub)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, ch)
}

func (s *Server) setChannelStatus(c *call) error {
	var in struct {
		Status string `json:"status"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	if err := s.ecert.SetChannelStatus(c.r.Context(), c.path("channel_id"), in.Status); err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]string{"channel_id": c.path("channel_id"), "status": in.Status})
}

func (s *Server) startActivation(c *call) error {
	var in ecert.ActivationRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	a, err := s.ecert.StartActivation(c.r.Context(), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, a)
}

func (s *Server) confirmActivation(c *call) error {
	var in struct {
		OTP       string `json:"otp"`
		DeviceKey string `json:"device_public_key"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	b, err := s.confirm(c, c.path("activation_id"), in.OTP, in.DeviceKey)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, b)
}

// confirm binds the device whose public key (hex) the caller sent.
func (s *Server) confirm(c *call, activationID, otp, deviceKeyHex string) (*ecert.Binding, error) {
	pub, err := hex.DecodeString(deviceKeyHex)
	if err != nil {
		return nil, yibao.FieldError("device_public_key", "want hex")
	}
	return s.ecert.ConfirmActivation(c.r.Context(), activationID, otp, pub)
}

func (s *Server) listBindings(c *call) error {
	list, err := s.ecert.Bindings(c.r.Context(), c.path("cert_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) revokeBindings(c *call) error {
	var in struct {
		BindingID string `json:"binding_id"`
		Reason    string `json:"reason"`
	}
	if err := c.decodeOptional(&in); err != nil {
		return err
	}
	n, err := s.ecert.Revoke(c.r.Context(), c.path("cert_id"), in.BindingID, in.Reason)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]int{"revoked": n})
}

func (s *Server) resolveCode(c *call) error {
	var in struct {
		Code string `json:"code"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	res, err := s.ecert.Resolve(c.r.Context(), in.Code)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, res)
}

// renderCode draws a code (or any text of the QR alphanumeric alphabet)
// as PNG or SVG, for pages that show it.
func (s *Server) renderCode(c *call) error {
	var in struct {
		Code   string `json:"code"`
		Format string `json:"format"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	if _, err := code.Parse(in.Code); err != nil {
		return err
	}
	switch in.Format {
	case "", "png":
		b, err := code.PNG(in.Code)
		if err != nil {
			return err
		}
		return c.raw(http.StatusOK, "image/png", b)
	case "svg":
		svg, err := code.SVG(in.Code)
		if err != nil {
			return err
		}
		return c.raw(http.StatusOK, "image/svg+xml", []byte(svg))
	}
	return yibao.FieldError("format", "want png or svg")
}

// ecertSummary is a person's own view through a channel: coverage today,
// personal-account balance, this year's accumulators and recent
// settlements. Every read is logged.
func (s *Server) ecertSummary(c *call) error {
	ctx := c.r.Context()
	psn, certID, err := s.ecert.SelfService(ctx, c.path("binding_id"), "summary")
	if err != nil {
		return err
	}
	sys := yibao.WithPrincipal(ctx, yibao.System("ecert-self-service"))
	today := yibao.DateOf(time.Now())
	covs, err := s.registry.CoveragesOn(sys, psn, today)
	if err != nil {
		return err
	}
	acc, err := s.settle.Accumulators(sys, psn)
	if err != nil {
		return err
	}
	hist, err := s.settle.History(sys, psn, 10)
	if err != nil {
		return err
	}
	type line struct {
		SetlID        string `json:"setl_id"`
		FixmedinsCode string `json:"fixmedins_code"`
		Status        string `json:"status"`
		CreatedAt     string `json:"created_at"`
		Medfee        string `json:"medfee_sumamt"`
		Fund          string `json:"fund_pay_sumamt"`
		Acct          string `json:"acct_pay"`
		Cash          string `json:"psn_cash_pay"`
	}
	recent := []line{}
	for _, h := range hist {
		recent = append(recent, line{h.SetlID, h.FixmedinsCode, h.Status, h.CreatedAt.Format(time.RFC3339), h.MedfeeSumamt.String(),
			h.FundPaySumamt.String(), h.AcctPay.String(), h.PsnCashPay.String()})
	}
	return c.json(http.StatusOK, map[string]any{"cert_id": certID, "psn_no": psn, "coverages": covs, "accumulators": acc, "recent_settlements": recent})
}

func (s *Server) devSMS(c *call) error {
	limit, err := c.limit()
	if err != nil {
		return err
	}
	list, err := s.ecert.DevMessages(c.r.Context(), limit)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list, "simulator": true})
}
