// Command goclient is a real Go LLM client for the end-to-end tests: it
// POSTs a JSON body with net/http and reads a streamed response line by
// line, as Go SDKs do.
//
//	goclient [flags] URL BODY
//
// Over https it trusts -ca and speaks HTTP/2 when the server offers it
// (-http1 forces HTTP/1.1); -h2c speaks HTTP/2 with prior knowledge over
// cleartext. -n N makes N concurrent calls on one connection, each with
// "{i}" in BODY replaced by its index; -grpc makes a gRPC-shaped call to
// URL instead; -delay waits before the first call; -loop makes one call per
// line of stdin. It prints each response's protocol, status and body size.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	ca := flag.String("ca", "", "PEM file of the CA to trust for https")
	h2c := flag.Bool("h2c", false, "HTTP/2 with prior knowledge over cleartext")
	http1 := flag.Bool("http1", false, "force HTTP/1.1")
	n := flag.Int("n", 1, "concurrent calls on one connection")
	grpc := flag.Bool("grpc", false, "make a gRPC-shaped call")
	delay := flag.Duration("delay", 0, "wait this long before calling, as a service does between start and its first call")
	loop := flag.Bool("loop", false, "make one call per line read from stdin, printing ok after each (for benchmarks)")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: goclient [flags] URL BODY")
		os.Exit(2)
	}
	url, body := flag.Arg(0), flag.Arg(1)

	tr := &http.Transport{Protocols: new(http.Protocols), ForceAttemptHTTP2: !*http1, MaxConnsPerHost: 1}
	switch {
	case *h2c:
		tr.Protocols.SetUnencryptedHTTP2(true)
	case *http1:
		tr.Protocols.SetHTTP1(true)
	default:
		tr.Protocols.SetHTTP1(true)
		tr.Protocols.SetHTTP2(true)
	}
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			fail(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	client := &http.Client{Transport: tr}
	time.Sleep(*delay)

	if *loop {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			if err != nil {
				fail(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if err := drain(client, req); err != nil {
				fail(err)
			}
			fmt.Println("ok")
		}
		return
	}
	if *grpc {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte{0, 0, 0, 0, 0}))
		if err != nil {
			fail(err)
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("TE", "trailers")
		call(client, req)
		return
	}
	var wg sync.WaitGroup
	for i := range *n {
		b := strings.ReplaceAll(body, "{i}", strconv.Itoa(i))
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(b))
		if err != nil {
			fail(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if *n == 1 {
			call(client, req)
			return
		}
		wg.Go(func() { call(client, req) })
	}
	wg.Wait()
}

func call(client *http.Client, req *http.Request) {
	resp, err := client.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	size := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		size += len(sc.Bytes()) + 1
	}
	if err := sc.Err(); err != nil {
		fail(err)
	}
	fmt.Println(resp.Proto, resp.Status, size)
}

// drain makes one call and reads its whole response.
func drain(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
