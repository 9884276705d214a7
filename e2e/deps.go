//go:build deps

// Package e2e's tests build small programs under testdata, which the go
// command leaves out of ./... and go mod tidy therefore does not read. This
// file, never built, names the modules only those programs import, so that
// tidy keeps them in go.mod.
package e2e

import _ "github.com/modelcontextprotocol/go-sdk/mcp"
