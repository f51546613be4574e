package loadgen

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/avxstate"
)

// CeilingConfig says what to seal and how hard.
type CeilingConfig struct {
	// Body is the plaintext sealed by every operation.
	Body []byte
	// Concurrency is the number of goroutines sealing at once: use the load's, so the
	// ceiling and the load compete for the same cores the same way (default 64).
	Concurrency int
	// Duration is how long each of the three measurements runs in all (default 3s).
	Duration time.Duration
}

// Rate is one measured operation rate.
type Rate struct {
	Ops        int64
	Elapsed    time.Duration
	OpsPerSec  float64
	CPUPerOp   time.Duration // this process's CPU time per operation
	BytesPerOp int           // size of what one operation produces (0 if not meaningful)
}

// CeilingResult is the bare-crypto cost of one body.
type CeilingResult struct {
	BodyBytes int
	// Seal is envelope.Seal of the body: the cryptography a gateway cannot avoid.
	Seal Rate
	// SealJSON is Seal plus the envelope's JSON encoding (what goes on the wire).
	SealJSON Rate
	// Primitives is the sum of the bare primitives, without envelope framing: ML-KEM-768
	// encapsulation, ML-DSA-65 signature (hedged, over a message of the envelope's
	// size), AES-256-GCM of the body and HMAC-SHA-512 over the same message.
	Primitives Rate
}

// Ceiling measures the rates of [CeilingResult]: each operation is run by
// cfg.Concurrency goroutines for cfg.Duration in all, in interleaved rounds.
func Ceiling(ctx context.Context, cfg CeilingConfig) (CeilingResult, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 3 * time.Second
	}
	keys, err := newCeilingKeys()
	if err != nil {
		return CeilingResult{}, err
	}
	res := CeilingResult{BodyBytes: len(cfg.Body)}
	in := keys.input(cfg.Body)
	seal := func(withJSON bool) func() (int, error) {
		return func() (int, error) {
			e, err := envelope.Seal(in, nil)
			if err != nil || !withJSON {
				return 0, err
			}
			b, err := e.MarshalJSON()
			return len(b), err
		}
	}
	prim, err := keys.primitives(cfg.Body)
	if err != nil {
		return res, err
	}
	ops := []struct {
		name string
		op   func() (int, error)
		into *Rate
	}{
		{"seal", seal(false), &res.Seal},
		{"seal+json", seal(true), &res.SealJSON},
		{"primitives", prim, &res.Primitives},
	}
	// A short unmeasured run first (heap growth, page faults), then the three
	// measurements interleaved in rounds, so that a change in what else the machine
	// is doing affects all three alike.
	warm := cfg
	warm.Duration = min(cfg.Duration/4, 500*time.Millisecond)
	if _, err := measure(ctx, warm, ops[0].op); err != nil {
		return res, fmt.Errorf("loadgen: ceiling: warm-up: %w", err)
	}
	round := cfg
	round.Duration = cfg.Duration / ceilingRounds
	for range ceilingRounds {
		for _, o := range ops {
			r, err := measure(ctx, round, o.op)
			if err != nil {
				return res, fmt.Errorf("loadgen: ceiling: %s: %w", o.name, err)
			}
			o.into.add(r)
		}
	}
	return res, nil
}

// ceilingRounds is how many interleaved rounds Ceiling splits each measurement into.
const ceilingRounds = 3

// add accumulates another measurement of the same operation.
func (r *Rate) add(o Rate) {
	cpu := r.CPUPerOp*time.Duration(r.Ops) + o.CPUPerOp*time.Duration(o.Ops)
	r.Ops += o.Ops
	r.Elapsed += o.Elapsed
	if o.BytesPerOp != 0 {
		r.BytesPerOp = o.BytesPerOp
	}
	if r.Ops > 0 && r.Elapsed > 0 {
		r.OpsPerSec = float64(r.Ops) / r.Elapsed.Seconds()
		r.CPUPerOp = cpu / time.Duration(r.Ops)
	}
}

type ceilingKeys struct {
	signer *envelope.SigningKey
	resp   *envelope.ResponseKey
	hmac   *envelope.HMACKey
}

func newCeilingKeys() (*ceilingKeys, error) {
	s, err1 := envelope.GenerateSigningKey(nil)
	r, err2 := envelope.GenerateResponseKey(nil)
	h, err3 := envelope.GenerateHMACKey(nil)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("loadgen: ceiling keys: %w", err)
	}
	return &ceilingKeys{signer: s, resp: r, hmac: h}, nil
}

func (k *ceilingKeys) input(body []byte) envelope.SealInput {
	return envelope.SealInput{
		TenantID:     "ten_01JD0000000000000000000000",
		Recipient:    k.resp.Public(),
		Signer:       k.signer,
		HMACKey:      k.hmac,
		Status:       200,
		Next:         "00u00000000004711024",
		AuditEventID: "aud_01JD0000000000000000000000",
		IssuedAt:     time.Now(),
		Plaintext:    body,
	}
}

// primitives returns one op of the bare primitives with keys of the envelope's kinds.
// Each op allocates its own buffers, as a request would.
func (k *ceilingKeys) primitives(body []byte) (func() (int, error), error) {
	pk, _, err := mlkem768.GenerateKeyPair(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("loadgen: ceiling: ML-KEM-768 key: %w", err)
	}
	_, sk, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("loadgen: ceiling: ML-DSA-65 key: %w", err)
	}
	macKey := k.hmac.Secret().Bytes()
	// The signed message of an envelope is the ciphertext plus about 1.3 KiB of
	// members (KEM ciphertext, nonce, ids); sign and MAC a message of that size.
	overhead := mlkem768.CiphertextSize + 256
	ctxStr := []byte("quantaseal-envelope-v1")
	return func() (int, error) {
		ct := make([]byte, mlkem768.CiphertextSize)
		ss := make([]byte, mlkem768.SharedKeySize)
		pk.EncapsulateTo(ct, ss, nil)
		avxstate.Clean() // as envelope.Seal does: the primitives' own cost, not circl's SSE penalty
		block, err := aes.NewCipher(ss)
		if err != nil {
			return 0, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return 0, err
		}
		var nonce [12]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return 0, err
		}
		m := make([]byte, overhead, overhead+len(body)+aead.Overhead())
		m = aead.Seal(m, nonce[:], body, nil)
		sig := make([]byte, mldsa65.SignatureSize)
		err = mldsa65.SignTo(sk, m, ctxStr, true, sig)
		avxstate.Clean()
		if err != nil {
			return 0, err
		}
		mac := hmac.New(sha512.New, macKey)
		mac.Write(m)
		return len(m) + len(sig) + len(mac.Sum(nil)), nil
	}, nil
}

// measure runs op from cfg.Concurrency goroutines for cfg.Duration.
func measure(ctx context.Context, cfg CeilingConfig, op func() (int, error)) (Rate, error) {
	var (
		ops   atomic.Int64
		size  atomic.Int64
		wg    sync.WaitGroup
		first error
		once  sync.Once
	)
	deadline := time.Now().Add(cfg.Duration)
	cpu0 := SelfCPU()
	start := time.Now()
	for range cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				n, err := op()
				if err != nil {
					once.Do(func() { first = err })
					return
				}
				size.Store(int64(n))
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := SelfCPU() - cpu0
	if first != nil {
		return Rate{}, first
	}
	if err := ctx.Err(); err != nil {
		return Rate{}, err
	}
	r := Rate{Ops: ops.Load(), Elapsed: elapsed, BytesPerOp: int(size.Load())}
	if r.Ops > 0 {
		r.OpsPerSec = float64(r.Ops) / elapsed.Seconds()
		r.CPUPerOp = cpu / time.Duration(r.Ops)
	}
	return r, nil
}
