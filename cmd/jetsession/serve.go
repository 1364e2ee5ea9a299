package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/jetsession/jetsession/internal/embedded"
)

func runServe(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "serve", "For development and trying things out: one server, no authentication, no TLS.\n"+
		"Data survives restarts in --data-dir. Other commands find it at the default\n"+
		"--nats URL when it listens on 127.0.0.1:4222.")
	var dataDir, listen string
	var asJSON, logs bool
	f.fs.StringVar(&dataDir, "data-dir", "jetsession-data", "`DIR` for the server's JetStream data")
	f.fs.StringVar(&listen, "listen", "127.0.0.1:4222", "client address `HOST:PORT` (port 0 picks a free one)")
	f.fs.BoolVar(&logs, "log", false, "print the server's own log on standard error")
	f.fs.BoolVar(&asJSON, "json", false, "print the URL as a JSON object")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return usagef("--listen %q is not HOST:PORT: %v (for example --listen 127.0.0.1:4222)", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return usagef("--listen %q: the port must be a number from 0 to 65535", listen)
	}
	if dataDir == "" {
		return usagef("--data-dir must not be empty")
	}
	if host == "" {
		host = "0.0.0.0" // ":4222" means every interface, as for net.Listen
	}
	srv, err := embedded.Start(embedded.Config{Host: host, Port: port, StoreDir: dataDir, Log: logs})
	switch {
	case errors.Is(err, embedded.ErrAddressInUse):
		return fmt.Errorf("cannot listen on %s: the address is already in use (is a server already running there? connect to it with --nats nats://%s, or pick another --listen address)", listen, listen)
	case err != nil:
		return fmt.Errorf("starting the server: %v (check --listen, and that --data-dir %s is writable)", err, dataDir)
	}
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	addr := srv.Addr().(*net.TCPAddr)
	connectHost := host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		connectHost = "127.0.0.1"
	}
	url := "nats://" + net.JoinHostPort(connectHost, strconv.Itoa(addr.Port))
	if asJSON {
		if err := newEncoder(sio.stdout).Encode(map[string]string{"url": url, "data_dir": dataDir}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(sio.stdout, "NATS with JetStream is listening on %s (data in %s; Ctrl-C to stop)\n", url, dataDir)
		fmt.Fprintf(sio.stdout, "connect with: export NATS_URL=%s\n", url)
	}
	<-ctx.Done()
	if !asJSON {
		fmt.Fprintln(sio.stderr, "stopping the server")
	}
	return nil
}
