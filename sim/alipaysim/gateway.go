package alipaysim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"yibao/money"
	"yibao/sim"
)

// call is one gateway request, verified.
type call struct {
	method string
	params url.Values
	biz    []byte // biz_content ("{}" when absent)
	base   string // where the simulator is reachable, e.g. http://127.0.0.1:8080/alipay
}

// decode reads biz_content into v.
func (c *call) decode(v any) error { return json.Unmarshal(c.biz, v) }

// result is a method's answer: the response object and the notifications
// it caused.
type result struct {
	body  obj
	notes []*notice
}

// obj is a JSON response object.
type obj = map[string]any

// Answers, as Alipay words them.
func success(fields obj) obj {
	if fields == nil {
		fields = obj{}
	}
	fields["code"], fields["msg"] = "10000", "Success"
	return fields
}

// bizFail is 40004 "Business Failed" with Alipay's sub_code.
func bizFail(subCode, subMsg string) obj {
	return obj{"code": "40004", "msg": "Business Failed", "sub_code": subCode, "sub_msg": subMsg}
}

// argFail is 40001 (missing) or 40002 (invalid) arguments.
func argFail(code, subCode, subMsg string) obj {
	msg := "Invalid Arguments"
	if code == "40001" {
		msg = "Missing Required Arguments"
	}
	return obj{"code": code, "msg": msg, "sub_code": subCode, "sub_msg": subMsg}
}

func invalidParam(format string, args ...any) obj {
	return bizFail("ACQ.INVALID_PARAMETER", "参数无效: "+fmt.Sprintf(format, args...))
}

// methods are the gateway methods the simulator serves.
func (s *Sim) methods() map[string]func(*call) result {
	return map[string]func(*call) result{
		"alipay.trade.pay":                               s.tradePay,
		"alipay.trade.create":                            s.tradeCreate,
		"alipay.trade.query":                             s.tradeQuery,
		"alipay.trade.close":                             s.tradeClose,
		"alipay.trade.refund":                            s.tradeRefund,
		"alipay.trade.fastpay.refund.query":              s.refundQuery,
		"alipay.user.agreement.page.sign":                s.signAgreement,
		"alipay.user.agreement.query":                    s.queryAgreement,
		"alipay.user.agreement.unsign":                   s.unsignAgreement,
		"alipay.data.dataservice.bill.downloadurl.query": s.billURL,
	}
}

// gateway serves POST /gateway.do.
func (s *Sim) gateway(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorResponse(w, argFail("40002", "isv.invalid-parameter", err.Error()))
		return
	}
	p := r.Form // query and form body: Alipay accepts the parameters in either
	method := p.Get("method")
	if method == "" {
		s.errorResponse(w, argFail("40001", "isv.missing-method", "缺少方法名参数"))
		return
	}
	h := s.methods()[method]
	if h == nil {
		s.errorResponse(w, argFail("40002", "isv.invalid-method", "不存在的方法名 (not in the simulator): "+method))
		return
	}
	key := strings.ReplaceAll(method, ".", "_") + "_response"
	if bad := s.checkRequest(p); bad != nil {
		s.reply(w, key, bad)
		return
	}
	c := &call{method: method, params: p, biz: []byte(p.Get("biz_content")), base: baseURL(r)}
	if len(bytes.TrimSpace(c.biz)) == 0 {
		c.biz = []byte("{}")
	}
	if !json.Valid(c.biz) {
		s.reply(w, key, argFail("40002", "isv.invalid-parameter", "biz_content 不是合法的 JSON"))
		return
	}

	// TimeoutNext: the charge or refund is carried out, then the answer
	// never comes.
	hang := (method == "alipay.trade.pay" || method == "alipay.trade.refund") &&
		s.faults.Take(func(f *sim.Faults) *int { return &f.TimeoutNext })
	res := h(c)

	// NotifyEarly: the notification goes out (first attempt, awaited)
	// before the answer.
	for _, n := range res.notes {
		if n != nil && n.early {
			s.dispatch(n, true)
		}
	}
	later := func() {
		for _, n := range res.notes {
			if n != nil && !n.early {
				s.dispatch(n, false)
			}
		}
	}
	if hang {
		later()
		select {
		case <-r.Context().Done():
		case <-s.ctx.Done():
		}
		return
	}
	s.reply(w, key, res.body)
	later()
}

// checkRequest verifies the common parameters and the signature; nil
// means the request is good, otherwise the error answer.
func (s *Sim) checkRequest(p url.Values) obj {
	switch {
	case p.Get("app_id") == "":
		return argFail("40001", "isv.missing-app-id", "缺少AppID参数")
	case p.Get("app_id") != s.cfg.AppID:
		return argFail("40002", "isv.invalid-app-id", "无效的AppID参数")
	case p.Get("sign_type") != "RSA2":
		return argFail("40002", "isv.invalid-signature-type", "无效的签名类型参数 (the simulator speaks RSA2 only)")
	case p.Get("charset") != "" && !strings.EqualFold(p.Get("charset"), "utf-8"):
		return argFail("40002", "isv.invalid-charset", "字符集错误 (the simulator speaks utf-8 only)")
	case p.Get("format") != "" && !strings.EqualFold(p.Get("format"), "JSON"):
		return argFail("40002", "isv.invalid-format", "无效的数据格式参数")
	case p.Get("sign") == "":
		return argFail("40001", "isv.missing-signature", "缺少签名参数")
	}
	if _, err := time.ParseInLocation(timeLayout, p.Get("timestamp"), chinaTime); err != nil {
		return argFail("40002", "isv.invalid-timestamp", "非法的时间戳参数")
	}
	sig, err := base64.StdEncoding.DecodeString(p.Get("sign"))
	if err != nil || s.cfg.AppPublicKey == nil {
		return argFail("40002", "isv.invalid-signature", "验签出错")
	}
	content := signContent(p, "sign")
	h := sha256.Sum256([]byte(content))
	if err := rsa.VerifyPKCS1v15(s.cfg.AppPublicKey, crypto.SHA256, h[:], sig); err != nil {
		return argFail("40002", "isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为："+content)
	}
	return nil
}

// signContent is the string Alipay signs: the non-empty parameters except
// those named, sorted by name (ASCII), joined as k=v&k=v with the values
// as they are (not URL-encoded).
func signContent(p url.Values, except ...string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		skip := false
		for _, e := range except {
			skip = skip || k == e
		}
		if !skip {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range p[k] {
			if v == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(k + "=" + v)
		}
	}
	return b.String()
}

// sign is RSA2: base64(SHA256withRSA(data)) with the Alipay key.
func (s *Sim) sign(data []byte) string {
	h := sha256.Sum256(data)
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.cfg.AlipayKey, crypto.SHA256, h[:])
	if err != nil {
		panic("alipaysim: signing: " + err.Error()) // only with a broken key
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// reply writes {"<key>": body, "sign": "..."}. The signature covers the
// exact bytes of body as written, which is what the SDK verifies (it
// slices the raw JSON value out of the answer).
func (s *Sim) reply(w http.ResponseWriter, key string, body obj) {
	raw := marshal(body)
	var b bytes.Buffer
	b.WriteString(`{"`)
	b.WriteString(key)
	b.WriteString(`":`)
	b.Write(raw)
	b.WriteString(`,"sign":`)
	b.Write(marshal(s.sign(raw)))
	b.WriteString(`}`)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Write(b.Bytes())
}

// errorResponse writes an unsigned {"error_response": …}, Alipay's answer
// when it cannot tell which method was called.
func (s *Sim) errorResponse(w http.ResponseWriter, body obj) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Write([]byte(`{"error_response":` + string(marshal(body)) + `}`))
}

// marshal is JSON without HTML escaping (Alipay sends < > & as is).
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("alipaysim: " + err.Error())
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// baseURL is where the simulator is mounted, as the client reached it:
// scheme, host and the prefix a StripPrefix took off.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	prefix := ""
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		prefix = strings.TrimSuffix(u.Path, r.URL.Path)
	}
	return scheme + "://" + r.Host + prefix
}

// yuan formats fen as Alipay's yuan string.
func yuan(fen int64) string { return money.Fen(fen).String() }

// parseAmount reads an amount Alipay accepts: yuan with at most two
// decimals in [0.01, 100000000].
func parseAmount(s string) (int64, bool) {
	v, err := money.ParseYuan(s)
	if err != nil || v <= 0 || v > 100_000_000_00 {
		return 0, false
	}
	return int64(v), true
}

// fmtTime formats a time as Alipay does (Beijing time).
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(chinaTime).Format(timeLayout)
}

// mask shows a buyer id the way Alipay shows logon ids: partly hidden.
func mask(id string) string {
	if len(id) < 8 {
		return id
	}
	return id[:3] + "***" + id[len(id)-4:]
}
