// An xtaci/smux peer for Burrow's interop tests (our own test program, built in test setup).
//
//	smuxpeer -mode server -addr 127.0.0.1:0 -version 2     # prints "LISTEN <addr>", echoes every stream
//	smuxpeer -mode client -addr 127.0.0.1:P -version 2 -streams 16 -bytes 1048576
//	    opens streams, writes pseudo-random bytes, checks the echo byte for byte, exits 0 on success
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"sync"

	"github.com/xtaci/smux"
)

func config(version int) *smux.Config {
	c := smux.DefaultConfig()
	c.Version = version
	return c
}

func server(addr string, version int) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("LISTEN %s\n", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			s, err := smux.Server(c, config(version))
			if err != nil {
				c.Close()
				return
			}
			for {
				st, err := s.AcceptStream()
				if err != nil {
					return
				}
				go func() {
					defer st.Close()
					io.Copy(st, st)
				}()
			}
		}()
	}
}

func client(addr string, version, streams, size int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := smux.Client(c, config(version))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, err := s.OpenStream()
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			data := make([]byte, size)
			rand.New(rand.NewSource(int64(i))).Read(data)
			go func() {
				for off := 0; off < len(data); off += 10000 {
					end := off + 10000
					if end > len(data) {
						end = len(data)
					}
					if _, err := st.Write(data[off:end]); err != nil {
						return
					}
				}
			}()
			got := make([]byte, size)
			if _, err := io.ReadFull(st, got); err != nil {
				errs <- fmt.Errorf("stream %d: %v", i, err)
				return
			}
			if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("stream %d: echo differs", i)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		fmt.Fprintln(os.Stderr, e)
		os.Exit(1)
	}
	fmt.Println("OK")
}

func main() {
	mode := flag.String("mode", "server", "server or client")
	addr := flag.String("addr", "127.0.0.1:0", "address")
	version := flag.Int("version", 1, "smux version")
	streams := flag.Int("streams", 16, "streams (client)")
	size := flag.Int("bytes", 1<<20, "bytes per stream (client)")
	flag.Parse()
	if *mode == "server" {
		server(*addr, *version)
	} else {
		client(*addr, *version, *streams, *size)
	}
}
