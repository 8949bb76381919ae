// Package walletsim runs the two wallet simulators (sim/wechatsim,
// sim/alipaysim) side by side on one loopback HTTP server — in-process for
// the demo and the tests, or on its own as `yibao sim wallet` — and keeps
// the key material both sides need in one folder.
package walletsim

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"yibao/sim"
	"yibao/sim/alipaysim"
	"yibao/sim/wechatsim"
)

// Merchant identities the simulators know (test values in the providers'
// own formats).
const (
	WechatMchID = "1900000109"
	WechatAppID = "wxd678efh567hg6787"
	AlipayAppID = "2021000118600001"
)

// Keys is the key material of both wallets: ours (merchant / app keys that
// sign requests) and theirs (platform keys that sign answers and
// notifications), plus WeChat Pay's API v3 key.
type Keys struct {
	WechatMerchant *rsa.PrivateKey
	WechatPlatform *rsa.PrivateKey
	WechatAPIv3Key string
	AlipayApp      *rsa.PrivateKey
	AlipayPlatform *rsa.PrivateKey
}

// Serial is a key's serial number as WeChat Pay names certificates.
func Serial(k *rsa.PrivateKey) string {
	h := sha256.Sum256(k.N.Bytes())
	return strings.ToUpper(hex.EncodeToString(h[:20]))
}

// LoadKeys reads the keys from dir, making any that are missing (files
// of mode 0600).
func LoadKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var k Keys
	var err error
	for name, dst := range map[string]**rsa.PrivateKey{"wechat-merchant.pem": &k.WechatMerchant, "wechat-platform.pem": &k.WechatPlatform,
		"alipay-app.pem": &k.AlipayApp, "alipay-platform.pem": &k.AlipayPlatform} {
		if *dst, err = loadOrMake(filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(dir, "wechat-apiv3.key")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k.WechatAPIv3Key = strings.TrimSpace(string(b))
	case errors.Is(err, os.ErrNotExist):
		r := make([]byte, 16)
		rand.Read(r)
		k.WechatAPIv3Key = hex.EncodeToString(r) // 32 characters
		if err := os.WriteFile(path, []byte(k.WechatAPIv3Key+"\n"), 0o600); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	if len(k.WechatAPIv3Key) != 32 {
		return nil, fmt.Errorf("%s: the API v3 key must be 32 characters", path)
	}
	return &k, nil
}

func loadOrMake(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		return k, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key", path)
	}
	return rk, nil
}

// Server is both simulators on one HTTP server: WeChat Pay under
// /wechat/, Alipay under /alipay/.
type Server struct {
	URL    string
	Wechat *wechatsim.Sim
	Alipay *alipaysim.Sim
	srv    *http.Server
}

// Options tune the simulators.
type Options struct {
	// Fast shortens the providers' notification retry schedules to
	// seconds (the demo and tests); the real schedules span a day.
	Fast bool
}

// Start serves the simulators on addr (e.g. "127.0.0.1:0").
func Start(k *Keys, addr string, o Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("wallet simulators: %w", err)
	}
	s := &Server{URL: "http://" + ln.Addr().String()}
	client := &http.Client{Timeout: 10 * time.Second}
	var wsched, asched []time.Duration
	if o.Fast {
		wsched = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute}
		asched = wsched
	}
	s.Wechat = wechatsim.New(wechatsim.Config{MchID: WechatMchID, AppID: WechatAppID, MerchantSerial: Serial(k.WechatMerchant),
		MerchantKey: &k.WechatMerchant.PublicKey, PlatformSerial: Serial(k.WechatPlatform), PlatformKey: k.WechatPlatform,
		APIv3Key: k.WechatAPIv3Key, Client: client, NotifySchedule: wsched})
	s.Alipay = alipaysim.New(alipaysim.Config{AppID: AlipayAppID, AppPublicKey: &k.AlipayApp.PublicKey, AlipayKey: k.AlipayPlatform,
		Client: client, NotifySchedule: asched})
	mux := http.NewServeMux()
	mux.Handle("/wechat/", http.StripPrefix("/wechat", s.Wechat))
	mux.Handle("/alipay/", http.StripPrefix("/alipay", s.Alipay))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "yibao wallet simulators (not WeChat Pay, not Alipay): /wechat/ speaks WeChat Pay API v3, /alipay/ the Alipay OpenAPI gateway.")
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// AddPayer gives a payer an account with balance fen in the named wallet.
func (s *Server) AddPayer(channel, ref string, balance int64) {
	switch channel {
	case "wechat":
		s.Wechat.AddPayer(ref, balance)
	case "alipay":
		s.Alipay.AddPayer(ref, balance)
	}
}

// Faults returns the named simulator's fault box.
func (s *Server) Faults(channel string) *sim.FaultBox {
	if channel == "alipay" {
		return s.Alipay.Faults()
	}
	return s.Wechat.Faults()
}

// Close stops both simulators.
func (s *Server) Close() error {
	s.Wechat.Close()
	s.Alipay.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
