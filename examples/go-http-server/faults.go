package main

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// faults is the fault injector's setting: off (the zero value) unless switched on by flag or environment.
type faults struct {
	errorRate float64       // share of requests answered 500 instead of being served
	latency   time.Duration // added before every request
}

func (f faults) enabled() bool { return f.errorRate > 0 || f.latency > 0 }

// wrap injects the faults in front of next: first the latency, then an error for a share of requests.
func (f faults) wrap(next http.Handler, random func() float64, sleep func(time.Duration)) http.Handler {
	if !f.enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.latency > 0 {
			sleep(f.latency)
		}
		if f.errorRate > 0 && random() < f.errorRate {
			w.Header().Set("X-Fault-Injected", "error")
			http.Error(w, "injected fault", http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// newRandom is a goroutine-safe source of floats in [0, 1).
func newRandom(seed int64) func() float64 {
	var mu sync.Mutex
	source := rand.New(rand.NewPCG(uint64(seed), 0x5eed)) //nolint:gosec // fault sampling, not security
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return source.Float64()
	}
}
