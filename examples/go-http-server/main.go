// Command go-http-server is the example service of roadbike's committed stacks: a small HTTP API with a
// health endpoint, Prometheus metrics through client_golang and an opt-in fault injector that drives
// SLO breaches on purpose.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// Set at build time: go build -ldflags "-X main.version=1.4.2 -X main.commit=<sha>".
var (
	version = "dev"
	commit  = "unknown"
)

// config is what the command line and the environment set.
type config struct {
	addr   string
	faults faults
}

// parseConfig reads flags first, then the environment for what the flags left unset.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("go-http-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.Float64Var(&cfg.faults.errorRate, "fault-error-rate", 0, "share of API requests answered 500 (0 to 1; env FAULT_ERROR_RATE)")
	fs.DurationVar(&cfg.faults.latency, "fault-latency", 0, "latency added to every API request (env FAULT_LATENCY)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if v := getenv("FAULT_ERROR_RATE"); v != "" && !set["fault-error-rate"] {
		rate, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return config{}, fmt.Errorf("FAULT_ERROR_RATE: %w", err)
		}
		cfg.faults.errorRate = rate
	}
	if v := getenv("FAULT_LATENCY"); v != "" && !set["fault-latency"] {
		latency, err := time.ParseDuration(v)
		if err != nil {
			return config{}, fmt.Errorf("FAULT_LATENCY: %w", err)
		}
		cfg.faults.latency = latency
	}
	if cfg.faults.errorRate < 0 || cfg.faults.errorRate > 1 {
		return config{}, fmt.Errorf("fault error rate %v is not between 0 and 1", cfg.faults.errorRate)
	}
	if cfg.faults.latency < 0 {
		return config{}, fmt.Errorf("fault latency %v is negative", cfg.faults.latency)
	}
	return cfg, nil
}

// run serves until ctx is done, then shuts down gracefully. ready, when not nil, receives the bound
// address once the listener is open.
func run(ctx context.Context, args []string, getenv func(string) string, logger *slog.Logger, ready chan<- string) error {
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	server := &http.Server{
		Handler:           newHandler(cfg.faults, newRandom(time.Now().UnixNano())),
		ReadHeaderTimeout: 5 * time.Second,
	}
	logger.Info("listening", "addr", listener.Addr().String(), "version", version, "commit", commit,
		"fault_error_rate", cfg.faults.errorRate, "fault_latency", cfg.faults.latency.String())
	if ready != nil {
		ready <- listener.Addr().String()
	}
	errs := make(chan error, 1)
	go func() { errs <- server.Serve(listener) }()
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errs; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], os.Getenv, logger, nil); err != nil {
		logger.Error("exiting", "error", err.Error())
		os.Exit(1)
	}
}
