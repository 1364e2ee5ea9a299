package testserver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RawPublisher speaks the NATS protocol by hand, so that tests can store
// what no client library would send: any header bytes at all, the way a
// hostile or broken writer can.
type RawPublisher struct {
	tb    testing.TB
	conn  net.Conn
	r     *bufio.Reader
	inbox string
}

// DialRaw connects a RawPublisher to the server at url (nats://host:port).
func DialRaw(tb testing.TB, serverURL string) *RawPublisher {
	tb.Helper()
	u, err := url.Parse(strings.Split(serverURL, ",")[0])
	if err != nil {
		tb.Fatalf("raw publisher: %v", err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		tb.Fatalf("raw publisher: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	p := &RawPublisher{tb: tb, conn: conn, r: bufio.NewReader(conn), inbox: "_INBOX.raw" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	if _, err := p.r.ReadString('\n'); err != nil { // INFO
		tb.Fatalf("raw publisher: reading INFO: %v", err)
	}
	fmt.Fprintf(conn, "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"protocol\":1}\r\nSUB %s.* 1\r\nPING\r\n", p.inbox)
	p.expect("PONG")
	return p
}

func (p *RawPublisher) expect(what string) {
	p.tb.Helper()
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := p.r.ReadString('\n')
		if err != nil {
			p.tb.Fatalf("raw publisher: waiting for %s: %v", what, err)
		}
		switch {
		case strings.HasPrefix(line, what):
			return
		case strings.HasPrefix(line, "PING"):
			fmt.Fprint(p.conn, "PONG\r\n")
		case strings.HasPrefix(line, "-ERR"):
			p.tb.Fatalf("raw publisher: server error %s", strings.TrimSpace(line))
		}
	}
}

// Publish stores a message with exactly these header bytes (which may be
// anything, even empty or malformed) and payload on subject, waits for the
// JetStream acknowledgement and returns the stream sequence it got.
//
// A "no responders" reply is retried for a while: on a cluster, the interest
// of a stream just created through another node reaches this node's routes
// a moment later, and a message nobody received was not stored.
func (p *RawPublisher) Publish(subject, header string, payload []byte) uint64 {
	p.tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		seq, stored := p.publishOnce(subject, header, payload)
		if stored {
			return seq
		}
		if time.Now().After(deadline) {
			p.tb.Fatalf("raw publisher: no stream listens on %s", subject)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishOnce publishes and reports the sequence, or stored false when no
// stream received the message.
func (p *RawPublisher) publishOnce(subject, header string, payload []byte) (uint64, bool) {
	p.tb.Helper()
	reply := p.inbox + "." + strconv.FormatInt(time.Now().UnixNano(), 36)
	if header == "" {
		fmt.Fprintf(p.conn, "PUB %s %s %d\r\n%s\r\n", subject, reply, len(payload), payload)
	} else {
		fmt.Fprintf(p.conn, "HPUB %s %s %d %d\r\n%s%s\r\n", subject, reply, len(header), len(header)+len(payload), header, payload)
	}
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := p.r.ReadString('\n')
		if err != nil {
			p.tb.Fatalf("raw publisher: waiting for the acknowledgement: %v", err)
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "PING":
			fmt.Fprint(p.conn, "PONG\r\n")
		case fields[0] == "-ERR":
			p.tb.Fatalf("raw publisher: server error %s", strings.TrimSpace(line))
		case fields[0] == "MSG" || fields[0] == "HMSG":
			size, _ := strconv.Atoi(fields[len(fields)-1])
			body := make([]byte, size+2)
			if _, err := io.ReadFull(p.r, body); err != nil {
				p.tb.Fatalf("raw publisher: reading the acknowledgement: %v", err)
			}
			body = body[:size]
			if fields[0] == "HMSG" {
				hdrLen, _ := strconv.Atoi(fields[len(fields)-2])
				if strings.Contains(string(body[:hdrLen]), " 503") {
					return 0, false
				}
				body = body[hdrLen:]
			}
			var ack struct {
				Seq   uint64 `json:"seq"`
				Error *struct {
					Description string `json:"description"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &ack); err != nil || ack.Error != nil || ack.Seq == 0 {
				p.tb.Fatalf("raw publisher: publish to %s was not stored: %s", subject, body)
			}
			return ack.Seq, true
		}
	}
}
