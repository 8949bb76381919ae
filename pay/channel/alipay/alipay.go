// Package alipay is yibao's Alipay adapter: channel.Channel on top of the
// Alipay OpenAPI Go SDK github.com/smartwalle/alipay/v3, in public-key
// mode (an app key pair plus Alipay's public key; no certificates).
//
// Every call is a form POST to the gateway (…/gateway.do) carrying the
// common parameters (app_id, method, charset, sign_type=RSA2, timestamp,
// version, notify_url) and a biz_content JSON, signed by the SDK with the
// app key (SHA256withRSA over the sorted k=v&… string). Every answer is
// JSON {"<method_with_underscores>_response": {...}, "sign": "..."}; the
// SDK verifies the signature over the exact bytes of the response object
// with Alipay's public key before anything here reads it.
//
// Alipay reports the outcome of a call in the answer body, not in the
// HTTP status: code 10000 is success, 10003 "paying", 20000 "service
// unavailable", 4000x refusals with a sub_code (ACQ.…) saying why. The
// mapping onto the channel contract is in classify.
//
// Config.BaseURL replaces https://openapi.alipay.com: the gateway is
// BaseURL+"/gateway.do", which is how the adapter reaches the simulator in
// sim/alipaysim.
package alipay

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"yibao/money"
	"yibao/pay/channel"
)

// chinaTime is the zone of Alipay's timestamps and bill dates (UTC+8).
var chinaTime = time.FixedZone("CST", 8*3600)

// timeLayout is Alipay's "yyyy-MM-dd HH:mm:ss".
const timeLayout = "2006-01-02 15:04:05"

// Product and scene codes of the merchant's Alipay contract. They are
// fixed when the merchant signs up for 商户代扣 and JSAPI payments; the
// values here are those of yibao's contract (and what the simulator
// expects).
const (
	productWithholding  = "GENERAL_WITHHOLDING"   // 商户代扣, the merchant side
	personalWithholding = "GENERAL_WITHHOLDING_P" // 商户代扣, the payer side
	productJSAPI        = "JSAPI_PAY"             // in-app (mini program / JSAPI) payment
	signScene           = "INDUSTRY|MEDICAL"      // agreed scene; not DEFAULT|DEFAULT since external_agreement_no is sent
)

// Config configures the adapter.
type Config struct {
	// BaseURL replaces https://openapi.alipay.com, e.g.
	// "http://127.0.0.1:8080/alipay" for the simulator: requests go to
	// BaseURL+"/gateway.do". Empty: the real production gateway. It is
	// also the base of Prepay.PayURL (BaseURL+"/pay/"+out_trade_no, the
	// simulator's confirmation page); with the real gateway PayURL is
	// empty and the app pays with the trade_no.
	BaseURL string
	AppID   string // the Alipay application id (APPID)

	AppKey          *rsa.PrivateKey // signs requests (应用私钥)
	AlipayPublicKey *rsa.PublicKey  // verifies answers and notifications (支付宝公钥)

	// HTTPClient is optional (timeouts, proxies). Default: a client with
	// a 30 s timeout. Bill files are downloaded with it too.
	HTTPClient *http.Client
}

// Channel is the Alipay adapter. It is safe for concurrent use.
type Channel struct {
	cfg    Config
	base   string // BaseURL without a trailing slash; "" for the real gateway
	client *sdk.Client
	hc     *http.Client
}

var _ channel.Channel = (*Channel)(nil)

// New builds the adapter. It does not contact Alipay.
func New(cfg Config) (*Channel, error) {
	switch {
	case cfg.AppID == "":
		return nil, errors.New("alipay: AppID is required")
	case cfg.AppKey == nil:
		return nil, errors.New("alipay: AppKey is required")
	case cfg.AlipayPublicKey == nil:
		return nil, errors.New("alipay: AlipayPublicKey is required")
	}
	c := &Channel{cfg: cfg}
	gateway := "" // the SDK's production gateway
	if cfg.BaseURL != "" {
		c.base = strings.TrimRight(cfg.BaseURL, "/")
		u, err := url.Parse(c.base)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("alipay: bad BaseURL %q", cfg.BaseURL)
		}
		gateway = c.base + "/gateway.do"
	}
	c.hc = &http.Client{Timeout: 30 * time.Second}
	if cfg.HTTPClient != nil {
		c.hc = cfg.HTTPClient
	}

	// The SDK takes keys as text: the private key as PEM (or bare base64)
	// of PKCS#1 or PKCS#8 DER, Alipay's public key as PEM (or bare
	// base64) of PKIX DER. Encode ours accordingly.
	appKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(cfg.AppKey)})
	pubDER, err := x509.MarshalPKIXPublicKey(cfg.AlipayPublicKey)
	if err != nil {
		return nil, fmt.Errorf("alipay: AlipayPublicKey: %w", err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	// production=true with the gateway overridden: the "sandbox" switch of
	// the SDK only picks Alipay's sandbox host, which we never use.
	client, err := sdk.New(cfg.AppID, string(appKey), true,
		sdk.WithProductionGateway(gateway),
		sdk.WithHTTPClient(c.hc),
		// Alipay reads the timestamp parameter as Beijing time.
		sdk.WithTimeLocation(chinaTime),
	)
	if err != nil {
		return nil, fmt.Errorf("alipay: %w", err)
	}
	if err := client.LoadAliPayPublicKey(string(pub)); err != nil {
		return nil, fmt.Errorf("alipay: loading the Alipay public key: %w", err)
	}
	c.client = client
	return c, nil
}

// Name is the channel's name in yibao.
func (c *Channel) Name() string { return "alipay" }

// errKind says how a refusal is reported.
type errKind int

const (
	// asQuery: a refusal is a plain error (a query cannot be "declined");
	// *_NOT_EXIST is ErrNotFound.
	asQuery errKind = iota
	// asAction: a refusal is a *channel.DeclineError; *_NOT_EXIST is
	// ErrNotFound.
	asAction
	// asCharge: like asAction, but every refusal is a decline, even
	// "not found" ones (the agreement the charge names does not exist).
	asCharge
)

// notFound are the sub_codes that mean "no such trade / agreement".
var notFound = map[string]bool{
	"ACQ.TRADE_NOT_EXIST":      true, // trade.query, close, refund, fastpay.refund.query
	"USER_AGREEMENT_NOT_EXIST": true, // user.agreement.query / unsign
	"AGREEMENT_NOT_EXIST":      true,
}

// unknownOutcome reports whether an answer leaves the outcome open:
// 20000 (service unavailable, isp.unknow-error), any *SYSTEM_ERROR
// sub_code (ACQ.SYSTEM_ERROR, also with an aop. prefix), and 40005 (call
// rate exceeded). 40005 is in fact a refusal, but a transient one: as
// "unknown" the caller queries (ErrNotFound) and sends the same
// out_trade_no again, instead of failing the payment.
func unknownOutcome(e *sdk.Error) bool {
	return e.Code == sdk.CodeUnknowError || e.Code == sdk.CodeCallLimited ||
		strings.HasSuffix(e.SubCode, "SYSTEM_ERROR") || strings.Contains(e.SubCode, "unknow-error")
}

// classify maps a failed call onto the channel's error contract. err is
// the SDK's error (nil if the answer was decoded and verified), e the
// answer's code fields. Rules:
//   - no verified answer at all (timeout, connection error, a body that is
//     not an Alipay answer, a bad answer signature): ErrUnknown;
//   - an answer whose outcome is open (unknownOutcome): ErrUnknown;
//   - ACQ.TRADE_NOT_EXIST and the like: ErrNotFound (not for asCharge);
//   - any other refusal: *DeclineError for actions, a plain error for
//     queries.
func classify(kind errKind, what string, e *sdk.Error, err error) error {
	if err != nil {
		// The SDK returns *sdk.Error for an error_response or an unsigned
		// answer carrying only code fields; anything else means we have
		// no verified answer.
		var ae *sdk.Error
		if !errors.As(err, &ae) {
			return fmt.Errorf("alipay: %s: %w: %w", what, channel.ErrUnknown, err)
		}
		e = ae
	}
	if e == nil {
		return fmt.Errorf("alipay: %s: %w: empty answer", what, channel.ErrUnknown)
	}
	code, msg := e.SubCode, e.SubMsg
	if code == "" {
		code, msg = string(e.Code), e.Msg
	}
	switch {
	case unknownOutcome(e):
		return fmt.Errorf("alipay: %s: %w: %s %s %s", what, channel.ErrUnknown, e.Code, code, msg)
	case e.Code.IsSuccess():
		// Callers handle success; reaching here is a bug in the caller.
		return fmt.Errorf("alipay: %s: unexpected success code %s", what, e.Code)
	case kind != asCharge && notFound[e.SubCode]:
		return fmt.Errorf("alipay: %s: %w: %s %s", what, channel.ErrNotFound, code, msg)
	case kind == asQuery:
		return fmt.Errorf("alipay: %s: %s %s %s", what, e.Code, code, msg)
	default:
		return fmt.Errorf("alipay: %s: %w", what, &channel.DeclineError{Code: code, Message: msg})
	}
}

// yuan formats fen as Alipay's yuan string ("0.01", "12345.67"), exactly.
func yuan(fen int64) string { return money.Fen(fen).String() }

// fen parses Alipay's yuan string ("0.01", "12.3", "-3.00") exactly.
func fen(s string) (int64, error) {
	v, err := money.ParseYuan(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("alipay: amount %q: %w", s, err)
	}
	return int64(v), nil
}

// parseTime reads Alipay's "yyyy-MM-dd HH:mm:ss" (optionally with
// milliseconds, as in gmt_refund) as Beijing time; zero if empty or
// malformed.
func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	for _, layout := range []string{timeLayout, timeLayout + ".000", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, chinaTime); err == nil {
			return t
		}
	}
	return time.Time{}
}

// subject is the trade title Alipay requires.
func subject(desc, outTradeNo string) string {
	if desc = strings.TrimSpace(desc); desc != "" {
		return desc
	}
	return outTradeNo
}
