// GOST's ssh transport in Go, for Burrow's interop tests (our own program, built on demand from
// Debian's golang.org/x/crypto): the listener and dialer logic of go-gost/x listener/ssh and
// dialer/ssh, without GOST's handler layers.
//
//	gostssh -mode server -addr 127.0.0.1:0 -user U -pass P -target 127.0.0.1:T
//	    an SSH server (password login); every "gost-tunnel" channel is forwarded to T; any other
//	    channel type is refused with UnknownChannelType "unsupported channel type: <t>"; global
//	    requests are answered false (GOST's DiscardRequests); prints "LOGIN <user>" per login;
//	    -refuse N refuses the first N gost-tunnel channels
//	gostssh -mode client -addr 127.0.0.1:0 -user U -pass P -server 127.0.0.1:S [-ping 1s]
//	    one SSH connection to S (host key not checked, as GOST); every accepted TCP connection
//	    rides a new "gost-tunnel" channel; -ping sends GOST's keep-alive (global request "ping",
//	    want-reply) and prints "PING ok=<bool>" per reply
//
// Both print "LISTEN <addr>". The copy loop is GOST's: the first direction to end closes both.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/crypto/ssh"
)

func pipe(a, b io.ReadWriteCloser) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(a, b); done <- struct{}{} }()
	go func() { io.Copy(b, a); done <- struct{}{} }()
	<-done
	a.Close()
	b.Close()
}

func main() {
	mode := flag.String("mode", "server", "server or client")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	user := flag.String("user", "", "user")
	pass := flag.String("pass", "", "password")
	target := flag.String("target", "", "server: where channels go")
	server := flag.String("server", "", "client: the SSH server")
	ping := flag.Duration("ping", 0, "client: keep-alive interval")
	refuse := flag.Int("refuse", 0, "server: refuse this many gost-tunnel channels first (ResourceShortage)")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())

	if *mode == "server" {
		_, pk, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ := ssh.NewSignerFromKey(pk)
		cfg := &ssh.ServerConfig{PasswordCallback: func(c ssh.ConnMetadata, p []byte) (*ssh.Permissions, error) {
			if c.User() == *user && string(p) == *pass {
				return nil, nil
			}
			return nil, fmt.Errorf("password rejected for %s", c.User())
		}}
		cfg.AddHostKey(signer)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
				if err != nil {
					conn.Close()
					return
				}
				fmt.Printf("LOGIN %s\n", sc.User())
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					if nc.ChannelType() != "gost-tunnel" {
						nc.Reject(ssh.UnknownChannelType, "unsupported channel type: "+nc.ChannelType())
						continue
					}
					if *refuse > 0 {
						*refuse--
						nc.Reject(ssh.ResourceShortage, "refused for the test")
						continue
					}
					ch, rq, err := nc.Accept()
					if err != nil {
						continue
					}
					go ssh.DiscardRequests(rq)
					go func() {
						up, err := net.Dial("tcp", *target)
						if err != nil {
							ch.Close()
							return
						}
						pipe(ch, up)
					}()
				}
				sc.Wait()
			}()
		}
	}

	cfg := &ssh.ClientConfig{
		User:            *user,
		Auth:            []ssh.AuthMethod{ssh.Password(*pass)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	}
	client, err := ssh.Dial("tcp", *server, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	if *ping > 0 {
		go func() {
			for range time.Tick(*ping) {
				ok, _, err := client.SendRequest("ping", true, nil)
				if err != nil {
					fmt.Println("PING error", err)
					return
				}
				fmt.Printf("PING ok=%v\n", ok)
			}
		}()
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			ch, rq, err := client.OpenChannel("gost-tunnel", nil)
			if err != nil {
				fmt.Println("OPEN error", err)
				c.Close()
				return
			}
			go ssh.DiscardRequests(rq)
			pipe(c, ch)
		}()
	}
}
