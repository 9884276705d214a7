// Command notls is a Go program without crypto/tls, built by the gobin
// tests to check that such an executable is reported, not probed.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stdout, "no TLS here")
}
