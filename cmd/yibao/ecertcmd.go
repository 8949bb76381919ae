package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"rsc.io/qr"

	"yibao/auth"
	"yibao/demo"
	"yibao/ecert/code"
	"yibao/gmcrypto"
)

// runEcert holds the e-certificate simulators: a phone on a channel
// (activate, code) and a hospital terminal (resolve). They speak the
// platform's signed protocol exactly as a real channel or HIS would; the
// demo channels' and hospitals' keys are derived from public seeds.
func runEcert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := errors.New("usage: yibao ecert activate|code|resolve [flags] (a phone and a terminal simulator for the demo)")
	if len(args) == 0 {
		return usage
	}
	switch args[0] {
	case "activate":
		return ecertActivate(ctx, args[1:], stdout, stderr)
	case "code":
		return ecertCode(args[1:], stdout, stderr)
	case "resolve":
		return ecertResolve(ctx, args[1:], stdout, stderr)
	}
	return usage
}

// deviceFile is what the simulated phone keeps.
type deviceFile struct {
	URL         string `json:"url"`
	Channel     string `json:"channel"`
	CertID      string `json:"cert_id"`
	BindingID   string `json:"binding_id"`
	PrivateKey  string `json:"private_key"` // hex; never sent anywhere
	Credential  string `json:"credential"`
	StepSeconds int    `json:"step_seconds"`
	Counter     int    `json:"counter"`
}

func callJSON(ctx context.Context, signer *auth.Signer, token, method, url string, body any) (map[string]any, error) {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if method != "GET" {
		req.Header.Set("Idempotency-Key", fmt.Sprintf("cli-%d", time.Now().UnixNano()))
	}
	if signer != nil {
		if err := signer.Sign(req, b); err != nil {
			return nil, err
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(out, &m)
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %d %s", method, req.URL.Path, resp.StatusCode, strings.TrimSpace(string(out)))
	}
	return m, nil
}

var otpInSMS = regexp.MustCompile(`验证码 ([0-9]{6})`)

func ecertActivate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao ecert activate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "platform URL")
	channel := fs.String("channel", "ch_wechat", "demo channel to activate on (its key is the demo's)")
	id := fs.String("id-number", "", "the person's ID number")
	name := fs.String("name", "", "the person's name")
	otp := fs.String("otp", "", "the one-time code from the SMS (asked for if empty)")
	admin := fs.String("read-sms-as", "", "user:password of an administrator: read the code from the demo's SMS outbox")
	out := fs.String("out", "device.json", "where the simulated phone keeps its key and credential")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" || *name == "" {
		return errors.New("--id-number and --name are required")
	}
	signer := &auth.Signer{KeyID: *channel, SM2: demo.ChannelKey(*channel)}
	act, err := callJSON(ctx, signer, "", "POST", *url+"/api/v1/ecert/activations", map[string]string{"id_number": *id, "name": *name})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "a one-time code was sent to %v\n", act["sent_to"])
	code6 := *otp
	if code6 == "" && *admin != "" {
		user, pw, _ := strings.Cut(*admin, ":")
		sess, err := callJSON(ctx, nil, "", "POST", *url+"/api/v1/auth/login", map[string]string{"username": user, "password": pw})
		if err != nil {
			return err
		}
		msgs, err := callJSON(ctx, nil, sess["token"].(string), "GET", *url+"/api/v1/ecert/dev/sms?limit=1", nil)
		if err != nil {
			return err
		}
		items, _ := msgs["items"].([]any)
		if len(items) > 0 {
			if m := otpInSMS.FindStringSubmatch(items[0].(map[string]any)["text"].(string)); m != nil {
				code6 = m[1]
				fmt.Fprintf(stdout, "read %s from the demo SMS outbox\n", code6)
			}
		}
	}
	if code6 == "" {
		fmt.Fprint(stdout, "one-time code: ")
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		code6 = strings.TrimSpace(line)
	}
	key, err := gmcrypto.GenerateKey(nil)
	if err != nil {
		return err
	}
	b, err := callJSON(ctx, signer, "", "POST", *url+"/api/v1/ecert/activations/"+act["activation_id"].(string)+"/confirm",
		map[string]string{"otp": code6, "device_public_key": hex.EncodeToString(key.Public().Bytes())})
	if err != nil {
		return err
	}
	dev := deviceFile{URL: *url, Channel: *channel, CertID: b["cert_id"].(string), BindingID: b["binding_id"].(string),
		PrivateKey: hex.EncodeToString(key.Bytes()), Credential: b["credential"].(string), StepSeconds: int(b["step_seconds"].(float64))}
	js, _ := json.MarshalIndent(dev, "", "  ")
	if err := os.WriteFile(*out, js, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "activated e-certificate %s on %s; the device key stays in %s\nnext: yibao ecert code --device %s\n", dev.CertID, *channel, *out, *out)
	return nil
}

func ecertCode(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao ecert code", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("device", "device.json", "the simulated phone's file")
	png := fs.String("png", "", "also write the QR code as PNG here")
	svg := fs.String("svg", "", "also write the QR code as SVG here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	js, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	var d deviceFile
	if err := json.Unmarshal(js, &d); err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	kb, _ := hex.DecodeString(d.PrivateKey)
	key, err := gmcrypto.ParsePrivateKey(kb)
	if err != nil {
		return err
	}
	cred, _ := hex.DecodeString(d.Credential)
	d.Counter = (d.Counter + 1) % 65536
	text, err := (&code.Device{Key: key, Credential: cred}).Generate(time.Now(), d.StepSeconds, uint16(d.Counter))
	if err != nil {
		return err
	}
	js, _ = json.MarshalIndent(d, "", "  ")
	os.WriteFile(*file, js, 0o600)
	if q, err := qr.Encode(text, qr.M); err == nil {
		printQR(stdout, q)
	}
	fmt.Fprintf(stdout, "%s\n(valid about %d s, once)\n", text, 2*d.StepSeconds)
	if *png != "" {
		b, err := code.PNG(text)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*png, b, 0o644); err != nil {
			return err
		}
	}
	if *svg != "" {
		s, err := code.SVG(text)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*svg, []byte(s), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// printQR draws the symbol with half-block characters, two modules a line.
func printQR(w io.Writer, q *qr.Code) {
	dark := func(x, y int) bool { return x >= 0 && y >= 0 && x < q.Size && y < q.Size && q.Black(x, y) }
	for y := -2; y < q.Size+2; y += 2 {
		var b strings.Builder
		for x := -2; x < q.Size+2; x++ {
			switch top, bot := dark(x, y), dark(x, y+1); {
			case top && bot:
				b.WriteString(" ")
			case top:
				b.WriteString("▄")
			case bot:
				b.WriteString("▀")
			default:
				b.WriteString("█")
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

func ecertResolve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao ecert resolve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "platform URL")
	keyID := fs.String("key", "ak_demo_h37010000001", "the institution's demo API key id")
	text := fs.String("code", "", "the scanned code")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var signer *auth.Signer
	for _, k := range demo.Build().APIKeys {
		if k.KeyID == *keyID {
			signer = &auth.Signer{KeyID: k.KeyID, Secret: k.Secret}
		}
	}
	if signer == nil {
		return fmt.Errorf("no demo key %q", *keyID)
	}
	res, err := callJSON(ctx, signer, "", "POST", *url+"/api/v1/ecert/resolve", map[string]string{"code": *text})
	if err != nil {
		return err
	}
	js, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintf(stdout, "%s\n", js)
	return nil
}
