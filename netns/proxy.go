package netns

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// The userspace hostPort proxy. Each published TCP or UDP port gets a socket
// bound on the host (hostIP:hostPort, or every address), which also holds
// the port against other programs. Kernel DNAT takes every connection to a
// non-loopback address before the socket sees it, so the proxy serves
// exactly what NAT cannot: connections to 127.0.0.1 and ::1. The proxy runs
// in the process that called Setup and dies with it.

const (
	proxyDialTimeout = 5 * time.Second
	udpFlowIdle      = 30 * time.Second // as the kernel's UDP conntrack timeout
)

type stopper interface{ stop() }

// listenProxy binds p on the host and forwards what arrives to target
// (the pod's IP and container port).
func listenProxy(p Port, target string, log *slog.Logger) (stopper, error) {
	addr := net.JoinHostPort(p.HostIP, strconv.Itoa(int(p.HostPort)))
	log = log.With("hostPort", p.String(), "target", target)
	switch p.Protocol {
	case "TCP":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", p, err)
		}
		t := &tcpProxy{ln: ln, target: target, log: log, conns: map[net.Conn]struct{}{}}
		t.wg.Add(1)
		go t.serve()
		return t, nil
	case "UDP":
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", p, err)
		}
		u := &udpProxy{pc: pc, target: target, log: log, flows: map[string]net.Conn{}}
		u.wg.Add(1)
		go u.serve()
		return u, nil
	}
	return nil, nil // SCTP: kernel NAT only
}

type tcpProxy struct {
	ln     net.Listener
	target string
	log    *slog.Logger
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu: open connections, both sides; nil once stopped
}

func (t *tcpProxy) serve() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // e.g. out of file descriptors: keep serving
			t.log.Warn("hostPort proxy accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if !t.track(c) {
			c.Close()
			return
		}
		t.wg.Add(1)
		go t.forward(c)
	}
}

func (t *tcpProxy) forward(c net.Conn) {
	defer t.wg.Done()
	defer t.untrack(c)
	u, err := net.DialTimeout("tcp", t.target, proxyDialTimeout)
	if err != nil {
		t.log.Debug("hostPort proxy dial", "err", err)
		return
	}
	if !t.track(u) {
		u.Close()
		return
	}
	defer t.untrack(u)
	done := make(chan struct{})
	go func() {
		pipe(u, c)
		close(done)
	}()
	pipe(c, u)
	<-done
}

// pipe copies src to dst and then half-closes dst, so each direction ends
// on its own as with a direct connection.
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func (t *tcpProxy) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *tcpProxy) untrack(c net.Conn) {
	c.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
}

func (t *tcpProxy) stop() {
	t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.conns = nil
	t.mu.Unlock()
	t.wg.Wait()
}

// udpProxy keeps one socket to the pod per client address, so replies find
// their way back; a flow ends after udpFlowIdle without replies.
type udpProxy struct {
	pc     net.PacketConn
	target string
	log    *slog.Logger
	wg     sync.WaitGroup
	mu     sync.Mutex
	flows  map[string]net.Conn // guarded by mu: by client address; nil once stopped
}

func (u *udpProxy) serve() {
	defer u.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, client, err := u.pc.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		up, err := u.flow(client)
		if err != nil {
			u.log.Debug("hostPort proxy dial", "err", err)
			continue
		}
		if up != nil {
			_, _ = up.Write(buf[:n])
		}
	}
}

func (u *udpProxy) flow(client net.Addr) (net.Conn, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.flows == nil {
		return nil, nil
	}
	if up, ok := u.flows[client.String()]; ok {
		return up, nil
	}
	up, err := net.Dial("udp", u.target)
	if err != nil {
		return nil, err
	}
	u.flows[client.String()] = up
	u.wg.Add(1)
	go u.replies(client, up)
	return up, nil
}

func (u *udpProxy) replies(client net.Addr, up net.Conn) {
	defer u.wg.Done()
	defer func() {
		up.Close()
		u.mu.Lock()
		if u.flows != nil && u.flows[client.String()] == up {
			delete(u.flows, client.String())
		}
		u.mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	for {
		_ = up.SetReadDeadline(time.Now().Add(udpFlowIdle))
		n, err := up.Read(buf)
		if err != nil { // idle, stopped, or the pod refused (ICMP): the next datagram starts a new flow
			return
		}
		if _, err := u.pc.WriteTo(buf[:n], client); err != nil {
			return
		}
	}
}

func (u *udpProxy) stop() {
	u.pc.Close()
	u.mu.Lock()
	for _, up := range u.flows {
		up.Close()
	}
	u.flows = nil
	u.mu.Unlock()
	u.wg.Wait()
}
