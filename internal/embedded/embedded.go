// Package embedded starts in-process nats-servers with JetStream on file
// storage: a single node for the commands' development mode and examples,
// and the plan of a cluster on loopback (ports, routes, options) that the
// tests and the benchmark command start in this process or in child
// processes.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ErrAddressInUse is returned by Start when another process already
// listens on the client address (often another NATS server).
var ErrAddressInUse = errors.New("address already in use")

// Config says where the server listens and keeps its data.
type Config struct {
	// Host and Port for clients; Port 0 picks a free port.
	Host string
	Port int
	// StoreDir is the JetStream data folder. Required.
	StoreDir string
	// Name of the server (default "jetsession").
	Name string
	// Log makes the server log to standard error.
	Log bool
}

// Start runs a server and waits until it accepts clients and JetStream is
// ready. It fails at once, without starting anything, when the address is
// taken (ErrAddressInUse) or the data folder cannot be written. The caller
// shuts the server down.
func Start(cfg Config) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded: a JetStream data folder is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = server.RANDOM_PORT
	}
	if cfg.Name == "" {
		cfg.Name = "jetsession"
	}
	if cfg.Port > 0 {
		// A server that cannot listen only logs it and never becomes
		// ready: find out first, and say so.
		if err := CheckListen(net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))); err != nil {
			return nil, err
		}
	}
	if err := CheckWritable(cfg.StoreDir); err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoLog:      !cfg.Log,
		NoSigs:     true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	if cfg.Log {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded: server not ready for connections within 10s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !srv.JetStreamEnabled() {
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, errors.New("embedded: JetStream not ready within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return srv, nil
}

// CheckListen reports whether a TCP listener can be opened on addr
// (host:port) right now; the error matches ErrAddressInUse when another
// process holds it.
func CheckListen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("embedded: cannot listen on %s: %w", addr, ErrAddressInUse)
	}
	if err != nil {
		return fmt.Errorf("embedded: cannot listen on %s: %w", addr, err)
	}
	return ln.Close()
}

// CheckWritable creates dir if needed and checks that a file can be
// written, synced and removed in it.
func CheckWritable(dir string) error {
	fail := func(err error) error {
		return fmt.Errorf("the folder %s is not writable: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString("ok"); err != nil {
		f.Close()
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	return nil
}
