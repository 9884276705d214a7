package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/genai"
)

// TestMCPPaths: the MCP prefixes default to the SDKs' endpoints, can be
// emptied (MCP off, not back to the defaults), and reach the kernel after
// the LLM ones, each once.
func TestMCPPaths(t *testing.T) {
	for _, tc := range []struct {
		name       string
		env        map[string]string
		args       []string
		wantMCP    []string
		wantKernel []string
		wantErr    string
	}{
		{name: "defaults", wantMCP: genai.DefaultMCPPaths, wantKernel: append(slices.Clone(capture.DefaultPaths), genai.DefaultMCPPaths...)},
		{name: "emptied", env: map[string]string{"LLM_OBSERVER_MCP_PATHS": ""}, wantMCP: []string{}, wantKernel: capture.DefaultPaths},
		{name: "flag", args: []string{"-mcp-paths", "/tools/mcp, /api/chat", "-paths", "/api/chat"}, wantMCP: []string{"/tools/mcp", "/api/chat"}, wantKernel: []string{"/api/chat", "/tools/mcp"}},
		{name: "no slash", env: map[string]string{"LLM_OBSERVER_MCP_PATHS": "mcp"}, wantErr: "LLM_OBSERVER_MCP_PATHS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.env, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MCPPaths == nil || !slices.Equal(c.MCPPaths, tc.wantMCP) {
				t.Errorf("MCPPaths = %#v, want %#v", c.MCPPaths, tc.wantMCP)
			}
			if got := c.KernelPaths(); !slices.Equal(got, tc.wantKernel) {
				t.Errorf("KernelPaths = %v, want %v", got, tc.wantKernel)
			}
		})
	}
}
