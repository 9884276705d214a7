package observer

import (
	"slices"
	"testing"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// TestMCPPaths: MCP prefixes keep an HTTP/2 connection as the LLM ones do
// (gRPC never), reach the assemblers, which share one session table, and
// can be turned off.
func TestMCPPaths(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mcp      []string
		wantMCP  []string
		wantKept map[string]bool
	}{
		{name: "defaults", mcp: nil, wantMCP: genai.DefaultMCPPaths,
			wantKept: map[string]bool{"/mcp": true, "/sse": true, "/messages?sessionId=1": true, "/v1/chat/completions": true, "/metrics": false}},
		{name: "configured", mcp: []string{"/tools/"}, wantMCP: []string{"/tools/"},
			wantKept: map[string]bool{"/tools/mcp": true, "/mcp": false, "/api/chat": true}},
		{name: "none", mcp: []string{}, wantMCP: []string{},
			wantKept: map[string]bool{"/mcp": false, "/api/chat": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Config{LLMPaths: []string{"/api/chat", "/v1/chat/completions"}, MCPPaths: tc.mcp}, nil, nil, nil)
			if !slices.Equal(a.cfg.GenAI.MCPPaths, tc.wantMCP) || a.cfg.GenAI.MCPPaths == nil {
				t.Errorf("assemblers get MCP paths %#v, want %#v", a.cfg.GenAI.MCPPaths, tc.wantMCP)
			}
			if a.cfg.GenAI.MCPSessions == nil {
				t.Error("no MCP session table for the assemblers to share")
			}
			for path, want := range tc.wantKept {
				if got := a.http2Wanted(path, "application/json"); got != want {
					t.Errorf("HTTP/2 connection opening with %s kept %v, want %v", path, got, want)
				}
			}
			if a.http2Wanted("/mcp", "application/grpc") {
				t.Error("a gRPC stream kept")
			}
		})
	}
}
