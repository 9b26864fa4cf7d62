// A gorilla/websocket peer for Burrow's interop tests (our own test program, built in test setup).
//
//	wspeer -mode server -addr 127.0.0.1:0 -path /ws   # prints "LISTEN <addr>", echoes every message
//	wspeer -mode client -url ws://127.0.0.1:P/ws -bytes N
//	    sends N pseudo-random bytes as binary messages of varied sizes, reads the echo as a byte
//	    stream (messages may be re-chunked), checks it byte for byte, exits 0 on success
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"

	"github.com/gorilla/websocket"
)

func server(addr, path string) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			t, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(t, m); err != nil {
				return
			}
		}
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("LISTEN %s\n", l.Addr())
	http.Serve(l, mux)
}

func client(url string, size int) {
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	data := make([]byte, size)
	rand.New(rand.NewSource(7)).Read(data)
	go func() {
		r := rand.New(rand.NewSource(8))
		for off := 0; off < len(data); {
			n := 1 + r.Intn(70000)
			if off+n > len(data) {
				n = len(data) - off
			}
			if err := c.WriteMessage(websocket.BinaryMessage, data[off:off+n]); err != nil {
				return
			}
			off += n
		}
	}()
	var got bytes.Buffer
	for got.Len() < size {
		_, m, err := c.ReadMessage()
		if err != nil {
			fmt.Fprintln(os.Stderr, "read:", err)
			os.Exit(1)
		}
		got.Write(m)
	}
	if !bytes.Equal(got.Bytes(), data) {
		fmt.Fprintln(os.Stderr, "echo differs")
		os.Exit(1)
	}
	fmt.Println("OK")
}

func main() {
	mode := flag.String("mode", "server", "server or client")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (server)")
	path := flag.String("path", "/ws", "path (server)")
	url := flag.String("url", "", "ws URL (client)")
	size := flag.Int("bytes", 4<<20, "bytes (client)")
	flag.Parse()
	if *mode == "server" {
		server(*addr, *path)
	} else {
		client(*url, *size)
	}
}
