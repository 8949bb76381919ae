package app

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestConfigLayers(t *testing.T) {
	c := Defaults()
	if err := c.LoadFile("testdata/config_ok.json"); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"YIBAO_ADDR": "127.0.0.1:7000", "YIBAO_DB": "postgres://u@h/db", "YIBAO_SESSION_TTL": "30m", "YIBAO_DEMO_PROVINCE": "44"}
	if err := c.LoadEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// The file set the format and body limit; the environment overrode addr and ttl.
	if c.Addr != "127.0.0.1:7000" || c.LogFormat != "json" || c.MaxBodyBytes != 2048 || c.SessionTTL != 30*time.Minute || c.DB != "postgres://u@h/db" || c.DemoProvince != "44" {
		t.Fatalf("config = %+v", c)
	}
	if r := c.Redacted(); strings.Contains(r.DB, "u@") && !strings.Contains(r.DB, "…") {
		t.Fatalf("DSN not redacted: %s", r.DB)
	}
	// Flags override the environment.
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.Flags(fs)
	if err := fs.Parse([]string{"--demo-province", "32"}); err != nil || c.Validate() != nil || c.DemoProvince != "32" {
		t.Fatalf("--demo-province: %v, %s", err, c.DemoProvince)
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Config)
		env  map[string]string
		want string
	}{
		{"bad addr", func(c *Config) { c.Addr = "8080" }, nil, "addr"},
		{"bad level", func(c *Config) { c.LogLevel = "loud" }, nil, "log_level"},
		{"bad format", func(c *Config) { c.LogFormat = "xml" }, nil, "log_format"},
		{"short master key", func(c *Config) { c.MasterKey = "abcd" }, nil, "master_key"},
		{"tiny body limit", func(c *Config) { c.MaxBodyBytes = 10 }, nil, "max_body_bytes"},
		{"short ttl", func(c *Config) { c.SessionTTL = time.Second }, nil, "session_ttl"},
		{"short admin password", func(c *Config) { c.AdminPassword = "x" }, nil, "admin_password"},
		{"env not a number", nil, map[string]string{"YIBAO_MAX_BODY_BYTES": "lots"}, "YIBAO_MAX_BODY_BYTES"},
		{"env bad duration", nil, map[string]string{"YIBAO_SESSION_TTL": "forever"}, "YIBAO_SESSION_TTL"},
		{"unknown demo province", nil, map[string]string{"YIBAO_DEMO_PROVINCE": "11"}, "demo_province"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			if tc.mut != nil {
				tc.mut(&c)
			}
			err := c.LoadEnv(func(k string) string { return tc.env[k] })
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %s", err, tc.want)
			}
		})
	}
	c := Defaults()
	if err := c.LoadFile("testdata/config_unknown.json"); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("unknown key: %v", err)
	}
}
