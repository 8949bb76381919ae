package code

import (
	"fmt"
	"sync"
	"time"

	"rsc.io/qr"

	"yibao/gmcrypto"
)

// BenchResult is what `yibao bench qr` prints.
type BenchResult struct {
	RawVerify, PerCore, AllCores, ColdPerCore, Generate float64 // per second
	Bytes, Chars, QRVersion                             int
}

// Bench measures verification of n codes from the given number of devices
// (credentials cached after first sight), the raw SM2 verify rate and code
// generation. now is the clock (the package reads none of its own).
func Bench(n, devices int, now func() time.Time, workers int) (*BenchResult, error) {
	if n < 100 {
		n = 100
	}
	devices = max(1, min(devices, n))
	root := gmcrypto.DeterministicKey([]byte("bench root"))
	plat := gmcrypto.DeterministicKey([]byte("bench platform"))
	pc, err := IssuePlatformCert(root, 370100, 1, plat.Public(), now().AddDate(1, 0, 0))
	if err != nil {
		return nil, err
	}
	at := now()
	devs := make([]*Device, devices)
	for i := range devs {
		k, err := gmcrypto.GenerateKey(nil)
		if err != nil {
			return nil, err
		}
		var id CertID
		copy(id[:], fmt.Sprintf("%012d", i))
		cred, err := IssueCredential(plat, 370100, 1, id, k.Public(), at.AddDate(1, 0, 0))
		if err != nil {
			return nil, err
		}
		devs[i] = &Device{Key: k, Credential: cred.Bytes()}
	}
	r := &BenchResult{}
	codes := make([]string, n)
	t0 := now()
	for i := range codes {
		if codes[i], err = devs[i%devices].Generate(at, 20, uint16(i/devices)); err != nil {
			return nil, err
		}
	}
	r.Generate = float64(n) / now().Sub(t0).Seconds()
	r.Chars = len(codes[0])
	r.Bytes = CodeLen
	if q, err := qr.Encode(codes[0], qr.M); err == nil {
		r.QRVersion = (q.Size - 17) / 4
	}
	trusted := func(a, k uint32) (*gmcrypto.PublicKey, bool) { return pc.Public, a == 370100 && k == 1 }

	// Cold: every device seen for the first time (two SM2 verifies).
	v := &Verifier{Platform: trusted}
	t0 = now()
	for i := range devices {
		if _, err := v.Verify(codes[i], at); err != nil {
			return nil, err
		}
	}
	r.ColdPerCore = float64(devices) / now().Sub(t0).Seconds()

	// Warm, one goroutine.
	t0 = now()
	for _, c := range codes {
		if _, err := v.Verify(c, at); err != nil {
			return nil, err
		}
	}
	r.PerCore = float64(n) / now().Sub(t0).Seconds()

	// Warm, all workers.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	t0 = now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if _, err := v.Verify(codes[i], at); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	r.AllCores = float64(n) / now().Sub(t0).Seconds()

	// Raw SM2 verify of one message, one core.
	msg := []byte(codes[0])
	sig, _ := devs[0].Key.SignRaw(uidCode, msg)
	pub := devs[0].Key.Public()
	t0 = now()
	for range n {
		if !pub.VerifyRaw(uidCode, msg, sig) {
			return nil, fmt.Errorf("raw verify failed")
		}
	}
	r.RawVerify = float64(n) / now().Sub(t0).Seconds()
	return r, nil
}
