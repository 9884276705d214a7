// Command tlsclient is a small Go HTTPS client built by the gobin tests, so
// that its executable holds crypto/tls and net/http the way an LLM SDK's
// would. Run, it posts one chat request to the URL given, reads the whole
// response and prints its status and length. It trusts the certificates in
// $SSL_CERT_FILE, as any Go program on Linux does.
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tlsclient https://host:port/v1/chat/completions")
		os.Exit(2)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}}
	body := `{"model":"test","messages":[{"role":"user","content":"hi"}],"stream":true}`
	resp, err := client.Post(os.Args[1], "application/json", strings.NewReader(body))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(resp.Proto, resp.Status, n)
}
