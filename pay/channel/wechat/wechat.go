// Package wechat is yibao's WeChat Pay adapter: channel.Channel on top of
// the official WeChat Pay API v3 Go SDK (github.com/wechatpay-apiv3/wechatpay-go).
//
// Every request is signed by the SDK with the merchant key
// (Authorization: WECHATPAY2-SHA256-RSA2048 ...) and every answer is
// verified against the platform public key (Wechatpay-Signature). The SDK
// hard-codes the host https://api.mch.weixin.qq.com; Config.BaseURL
// redirects those requests (path and query kept) to another server, which
// is how the adapter reaches the simulator in sim/wechatsim. The signature
// covers only the path and query, so the redirect does not disturb it.
//
// Where the SDK has a generated service (JSAPI orders, domestic refunds)
// it is used; the withholding (委托代扣, papay) and bill endpoints have
// none and are called through the SDK's signed core client.
package wechat

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/consts"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"yibao/pay/channel"
)

// host is where the SDK (and WeChat's download URLs) point.
const host = consts.WechatPayAPIServer

// chinaTime is the zone of WeChat's bill dates and timestamps (UTC+8).
var chinaTime = time.FixedZone("CST", 8*3600)

// Config configures the adapter.
type Config struct {
	// BaseURL replaces https://api.mch.weixin.qq.com, e.g.
	// "http://127.0.0.1:8080/sim/wechat" for the simulator. Empty: the
	// real host. It is also the base of Prepay.PayURL (BaseURL+"/pay/"+
	// prepay_id, the simulator's confirmation page); with the real host
	// PayURL is empty and the app confirms with the prepay_id.
	BaseURL string
	MchID   string // 商户号
	AppID   string // the appid bound to the merchant

	MerchantSerial string          // serial number of the merchant API certificate
	MerchantKey    *rsa.PrivateKey // signs requests

	PlatformSerial string         // WeChat Pay public key id (or platform certificate serial)
	PlatformKey    *rsa.PublicKey // verifies answers and callbacks

	APIv3Key string // 32-byte key that encrypts callback resources

	// HTTPClient is optional (timeouts, proxies); its Transport is wrapped
	// by the BaseURL redirect. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
}

// Channel is the WeChat Pay adapter. It is safe for concurrent use.
type Channel struct {
	cfg     Config
	base    *url.URL // nil: the real host
	client  *core.Client
	dl      *core.Client // same signer, no answer verification (bill files are unsigned)
	jsapi   *jsapi.JsapiApiService
	refunds *refunddomestic.RefundsApiService
	notify  *notify.Handler
	now     func() time.Time
}

var _ channel.Channel = (*Channel)(nil)

// New builds the adapter. It does not contact WeChat.
func New(cfg Config) (*Channel, error) {
	switch {
	case cfg.MchID == "" || cfg.AppID == "":
		return nil, errors.New("wechat: MchID and AppID are required")
	case cfg.MerchantKey == nil || cfg.MerchantSerial == "":
		return nil, errors.New("wechat: MerchantKey and MerchantSerial are required")
	case cfg.PlatformKey == nil || cfg.PlatformSerial == "":
		return nil, errors.New("wechat: PlatformKey and PlatformSerial are required")
	case len(cfg.APIv3Key) != 32:
		return nil, errors.New("wechat: APIv3Key must be 32 bytes")
	}
	c := &Channel{cfg: cfg, now: time.Now}
	if cfg.BaseURL != "" {
		u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("wechat: bad BaseURL %q", cfg.BaseURL)
		}
		c.base = u
	}
	hc := &http.Client{Timeout: consts.DefaultTimeout}
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	}
	if c.base != nil {
		next := hc.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		hc.Transport = &rewrite{base: c.base, next: next}
	}
	client, err := core.NewClient(context.Background(),
		// The public-key mode: the platform key is configured, never
		// downloaded (WithWechatPayAutoAuthCipher would fetch
		// certificates from the real host).
		option.WithWechatPayPublicKeyAuthCipher(cfg.MchID, cfg.MerchantSerial, cfg.MerchantKey, cfg.PlatformSerial, cfg.PlatformKey),
		option.WithHTTPClient(hc),
	)
	if err != nil {
		return nil, fmt.Errorf("wechat: %w", err)
	}
	c.client = client
	c.dl = core.NewClientWithValidator(client, &validators.NullValidator{})
	c.jsapi = &jsapi.JsapiApiService{Client: client}
	c.refunds = &refunddomestic.RefundsApiService{Client: client}
	h, err := notify.NewRSANotifyHandler(cfg.APIv3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(cfg.PlatformSerial, *cfg.PlatformKey))
	if err != nil {
		return nil, fmt.Errorf("wechat: notify handler: %w", err)
	}
	c.notify = h
	return c, nil
}

// Name is the channel's name in yibao.
func (c *Channel) Name() string { return "wechat" }

// rewrite sends requests for WeChat's hosts to base, keeping path and
// query. The request signature covers only path and query, so it stays
// valid; base's own path (e.g. /sim/wechat) is prepended.
type rewrite struct {
	base *url.URL
	next http.RoundTripper
}

func (t *rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	if h := req.URL.Hostname(); h != "api.mch.weixin.qq.com" && h != "api2.mch.weixin.qq.com" {
		return t.next.RoundTrip(req)
	}
	u := *req.URL
	u.Scheme, u.Host, u.User = t.base.Scheme, t.base.Host, t.base.User
	u.Path = t.base.Path + req.URL.Path
	if req.URL.RawPath != "" {
		u.RawPath = t.base.EscapedPath() + req.URL.RawPath
	}
	r2 := req.Clone(req.Context())
	r2.URL = &u
	r2.Host = ""
	return t.next.RoundTrip(r2)
}

// errKind says how a failed call is reported.
type errKind int

const (
	// asQuery: 4xx is a plain error (a query cannot be "declined").
	asQuery errKind = iota
	// asAction: 4xx is a definite refusal, *channel.DeclineError.
	asAction
	// asCharge: like asAction, and even "not found" answers are a
	// refusal (the contract or order the charge names does not exist).
	asCharge
)

// classify maps an SDK error onto the channel's error contract:
//   - no answer (timeout, connection error), 5xx, SYSTEMERROR, 429, or an
//     answer whose signature fails: the outcome is unknown (ErrUnknown);
//   - 404 / *_NOT_EXIST(S): ErrNotFound (for asQuery and asAction);
//   - other 4xx: *DeclineError for actions, a plain error for queries.
func classify(kind errKind, what string, err error) error {
	var ae *core.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("wechat: %s: %w: %w", what, channel.ErrUnknown, err)
	}
	switch {
	case ae.StatusCode >= 500, ae.StatusCode == http.StatusTooManyRequests,
		ae.Code == "SYSTEMERROR", ae.Code == "SYSTEM_ERROR", ae.Code == "BANKERROR", ae.Code == "FREQUENCY_LIMITED":
		return fmt.Errorf("wechat: %s: %w: HTTP %d %s %s", what, channel.ErrUnknown, ae.StatusCode, ae.Code, ae.Message)
	case ae.StatusCode < 400:
		// 1xx/3xx: the SDK treats anything outside 2xx as an error.
		return fmt.Errorf("wechat: %s: %w: HTTP %d", what, channel.ErrUnknown, ae.StatusCode)
	case kind != asCharge && (ae.StatusCode == http.StatusNotFound || ae.Code == "ORDER_NOT_EXIST" ||
		ae.Code == "RESOURCE_NOT_EXISTS" || ae.Code == "ORDERNOTEXIST"):
		return fmt.Errorf("wechat: %s: %w: %s %s", what, channel.ErrNotFound, ae.Code, ae.Message)
	case kind == asQuery:
		return fmt.Errorf("wechat: %s: HTTP %d %s %s", what, ae.StatusCode, ae.Code, ae.Message)
	default:
		return fmt.Errorf("wechat: %s: %w", what, &channel.DeclineError{Code: ae.Code, Message: ae.Message})
	}
}

// apiCode returns the WeChat error code of err, or "".
func apiCode(err error) string {
	var ae *core.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}
