package app

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"yibao/pay/channel"
	"yibao/pay/channel/alipay"
	"yibao/pay/channel/wechat"
	"yibao/sim/walletsim"
)

// openWallets builds the wallet adapters, starting the in-process
// simulators when configured so. The adapters are the production code
// path; only their base URL points at a simulator.
func (a *App) openWallets() ([]channel.Channel, error) {
	cfg := a.Config
	if cfg.Wallets == "off" {
		return nil, nil
	}
	keys, err := walletsim.LoadKeys(cfg.WalletKeys)
	if err != nil {
		return nil, fmt.Errorf("wallet keys: %w", err)
	}
	base := strings.TrimSuffix(cfg.Wallets, "/")
	if cfg.Wallets == "sim" {
		a.Wallets, err = walletsim.Start(keys, "127.0.0.1:0", walletsim.Options{Fast: true})
		if err != nil {
			return nil, err
		}
		base = a.Wallets.URL
	}
	client := &http.Client{Timeout: 15 * time.Second}
	wc, err := wechat.New(wechat.Config{BaseURL: base + "/wechat", MchID: walletsim.WechatMchID, AppID: walletsim.WechatAppID,
		MerchantSerial: walletsim.Serial(keys.WechatMerchant), MerchantKey: keys.WechatMerchant,
		PlatformSerial: walletsim.Serial(keys.WechatPlatform), PlatformKey: &keys.WechatPlatform.PublicKey, APIv3Key: keys.WechatAPIv3Key, HTTPClient: client})
	if err != nil {
		return nil, fmt.Errorf("wechat pay adapter: %w", err)
	}
	ac, err := alipay.New(alipay.Config{BaseURL: base + "/alipay", AppID: walletsim.AlipayAppID, AppKey: keys.AlipayApp,
		AlipayPublicKey: &keys.AlipayPlatform.PublicKey, HTTPClient: client})
	if err != nil {
		return nil, fmt.Errorf("alipay adapter: %w", err)
	}
	return []channel.Channel{wc, ac}, nil
}
