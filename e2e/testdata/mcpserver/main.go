// Command mcpserver is a real MCP server for the end-to-end tests, built on
// the official Go SDK: one tool, get_weather, served over the Streamable
// HTTP transport at /mcp with the SDK's defaults (sessions, answers as
// event streams), and over the older HTTP+SSE transport at /sse (the
// stream, whose endpoint event names /sse?sessionid=... for the POSTs).
// A city it has no weather for makes the tool fail
// (a result with isError); a tool it does not have is a JSON-RPC error.
//
//	mcpserver [-addr 127.0.0.1:0]
//
// It prints the address it listens on, then serves until killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type weatherArgs struct {
	City string `json:"city" jsonschema:"the city to report on"`
}

var weather = map[string]string{"Paris": "18°C, light rain", "Oslo": "4°C, clear"}

func getWeather(_ context.Context, _ *mcp.CallToolRequest, in weatherArgs) (*mcp.CallToolResult, any, error) {
	w, ok := weather[in.City]
	if !ok {
		// The SDK turns a handler's error into a result with isError set.
		return nil, nil, fmt.Errorf("no weather for %q", in.City)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: w}}}, nil, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	server := mcp.NewServer(&mcp.Implementation{Name: "weather", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "get_weather", Description: "Current weather in a city."}, getWeather)
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcpserver:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	mux := http.NewServeMux()
	mux.Handle("/mcp", handler)
	mux.Handle("/sse", mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return server }, nil))
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, "mcpserver:", err)
		os.Exit(1)
	}
}
