// A GOST-shaped tunnel end in Go for Burrow's benchmarks (our own program, built on demand): the
// same libraries, defaults and copy loop GOST v3 uses, without GOST's handler layers, so Burrow
// can replace either end of a Go pair.
//
//	tunnelpeer -mode server -proto ws|mws|mtcp -addr 127.0.0.1:0 -target 127.0.0.1:T
//	    accepts the carrier and forwards every stream to T
//	tunnelpeer -mode server -proto tcp -addr 127.0.0.1:0 -target 127.0.0.1:T
//	    a plain TCP forward to T (GOST's tcp forward without its handler layers)
//	tunnelpeer -mode client -proto ws|mws|mtcp -addr 127.0.0.1:0 -server 127.0.0.1:S
//	    accepts TCP and carries every connection to S (ws: one WebSocket each; mws/mtcp: one
//	    smux v1 stream each over one session)
//
// Both print "LISTEN <addr>". ws uses gorilla/websocket with its default buffers (a 4 KiB write
// buffer, so big writes leave as 4 KiB frames) and GOST's message-stream adapter; smux uses
// smux.DefaultConfig() with GOST's versions (mtcp 2, mws 1); the copy loop is GOST's: 64 KiB buffers,
// and the first direction to end closes both sides.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/gorilla/websocket"
	"github.com/xtaci/smux"
)

// wsConn is GOST's adapter: a WebSocket as a byte stream, one binary message per Write.
type wsConn struct {
	*websocket.Conn
	r  io.Reader
	mu sync.Mutex
}

func (c *wsConn) Read(b []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(b)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// transport is GOST's: copy both ways with 64 KiB buffers, return when the first ends.
func transport(a, b io.ReadWriteCloser) {
	done := make(chan struct{}, 2)
	cp := func(dst io.Writer, src io.Reader) {
		buf := make([]byte, 64*1024)
		io.CopyBuffer(dst, src, buf)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	a.Close()
	b.Close()
}

// smuxConfig is GOST's: smux's defaults, version 2 for mtcp and 1 for mws.
func smuxConfig(proto string) *smux.Config {
	c := smux.DefaultConfig()
	c.Version = 1
	if proto == "mtcp" {
		c.Version = 2
	}
	return c
}

func listen(addr string) net.Listener {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("LISTEN %s\n", l.Addr())
	return l
}

func server(proto, addr, target string) {
	l := listen(addr)
	switch proto {
	case "ws", "mws":
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		mux := http.NewServeMux()
		mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			c := &wsConn{Conn: ws}
			if proto == "ws" {
				t, err := net.Dial("tcp", target)
				if err != nil {
					ws.Close()
					return
				}
				transport(c, t)
				return
			}
			serveSmux(c, target, proto)
		})
		http.Serve(l, mux)
	case "mtcp":
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveSmux(c, target, proto)
		}
	case "tcp":
		// A plain forward, as GOST's tcp handler does it: dial the target, transport both ways.
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				t, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				transport(c, t)
			}()
		}
	}
}

func serveSmux(c io.ReadWriteCloser, target, proto string) {
	s, err := smux.Server(c, smuxConfig(proto))
	if err != nil {
		c.Close()
		return
	}
	defer s.Close()
	for {
		st, err := s.AcceptStream()
		if err != nil {
			return
		}
		go func() {
			t, err := net.Dial("tcp", target)
			if err != nil {
				st.Close()
				return
			}
			transport(st, t)
		}()
	}
}

func dialWs(server string) (*wsConn, error) {
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+server+"/ws", nil)
	if err != nil {
		return nil, err
	}
	return &wsConn{Conn: ws}, nil
}

func client(proto, addr, server string) {
	l := listen(addr)
	var mu sync.Mutex
	var session *smux.Session
	stream := func() (io.ReadWriteCloser, error) {
		mu.Lock()
		defer mu.Unlock()
		if session == nil || session.IsClosed() {
			var c io.ReadWriteCloser
			var err error
			if proto == "mws" {
				c, err = dialWs(server)
			} else {
				c, err = net.Dial("tcp", server)
			}
			if err != nil {
				return nil, err
			}
			if session, err = smux.Client(c, smuxConfig(proto)); err != nil {
				return nil, err
			}
		}
		return session.OpenStream()
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			var up io.ReadWriteCloser
			var err error
			if proto == "ws" {
				up, err = dialWs(server)
			} else {
				up, err = stream()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				c.Close()
				return
			}
			transport(c, up)
		}()
	}
}

func main() {
	mode := flag.String("mode", "server", "server or client")
	proto := flag.String("proto", "ws", "ws, mws, mtcp, or tcp (server: a plain forward)")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	target := flag.String("target", "", "forward target (server)")
	server_ := flag.String("server", "", "tunnel server (client)")
	flag.Parse()
	if *mode == "server" {
		server(*proto, *addr, *target)
	} else {
		client(*proto, *addr, *server_)
	}
}
