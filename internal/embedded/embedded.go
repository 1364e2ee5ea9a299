// Package embedded starts an in-process nats-server with JetStream on file
// storage, for the commands' development mode and for examples.
package embedded

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

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
// ready. The caller shuts it down.
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
