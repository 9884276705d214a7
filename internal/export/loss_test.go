package export

import (
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// lossCall is a call as genai ends it after each kind of loss or wire error.
func lossCall(model string, port, status int, truncated bool, errType, errMsg string) *genai.Call {
	return &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderOpenAI, API: "openai.chat_completions",
		Endpoint: genai.Endpoint{ClientSide: true, ServerAddress: "api.openai.com", ServerPort: 443, ClientAddress: "10.0.0.5", ClientPort: port},
		Method:   "POST", Path: "/v1/chat/completions", Status: status, Stream: true,
		RequestModel: model, Truncated: truncated, ErrorType: errType, ErrorMessage: errMsg,
		Start: at(0), End: at(300),
	}
}

// TestLossIsNotError: a call the observer saw only in part is exported with
// status unset, no error.type, llm_observer.truncated=true and counted by
// that outcome; what the wire said failed stays an error.
func TestLossIsNotError(t *testing.T) {
	gapMid := lossCall("gap-mid-stream", 52001, 200, true, "", "")
	gapMid.ResponseModel, gapMid.Chunks = "gap-mid-stream-0613", 2
	reqGap := lossCall("request-gap", 52002, 200, true, "", "")
	reqGap.FinishReasons = []string{"stop"}
	closed := lossCall("closed-before-response", 52003, 0, true, "", "")
	cut := lossCall("cut-before-final-chunk", 52004, 200, true, "", "")
	cut.Chunks = 5
	tests := []struct {
		call      *genai.Call
		wantError string // status message, "" for unset
		wantType  string
	}{
		{call: gapMid},
		{call: reqGap},
		{call: closed},
		{call: cut},
		{call: lossCall("complete", 52005, 200, false, "", "")},
		{call: lossCall("http-401", 52006, 401, false, "invalid_api_key", "Incorrect API key provided."), wantError: "Incorrect API key provided.", wantType: "invalid_api_key"},
		{call: lossCall("ollama-error-line", 52007, 200, false, "_OTHER", "model runner has unexpectedly stopped"), wantError: "model runner has unexpectedly stopped", wantType: "_OTHER"},
		{call: lossCall("anthropic-error-event", 52008, 200, true, "overloaded_error", "Overloaded"), wantError: "Overloaded", wantType: "overloaded_error"},
		{call: lossCall("http-500-body-cut", 52009, 500, true, "500", ""), wantError: "500", wantType: "500"},
	}
	e, rcv := newTestExporter(t, otlptest.GRPC, nil)
	for _, tt := range tests {
		end(e, curl, tt.call)
	}
	shutdown(t, e)

	spans := map[string]otlptest.Span{}
	for _, s := range rcv.WaitSpans(t, len(tests), waitLong) {
		spans[s.Attributes.Str("gen_ai.request.model")] = s
	}
	requests := map[string]otlptest.DataPoint{}
	for _, p := range rcv.DataPoints("llm_observer.client.requests") {
		requests[p.Attributes.Str("gen_ai.request.model")] = p
	}
	errorsCounted := map[string]bool{}
	for _, p := range rcv.DataPoints("llm_observer.client.errors") {
		errorsCounted[p.Attributes.Str("gen_ai.request.model")] = true
	}
	timed := map[string]bool{}
	for _, p := range rcv.DataPoints("gen_ai.client.operation.duration") {
		timed[p.Attributes.Str("gen_ai.request.model")] = true
	}
	for _, tt := range tests {
		model := tt.call.RequestModel
		t.Run(model, func(t *testing.T) {
			s, ok := spans[model]
			if !ok {
				t.Fatal("no span")
			}
			switch {
			case tt.wantError == "" && s.Status != tracepb.Status_STATUS_CODE_UNSET:
				t.Errorf("status %v %q, want unset", s.Status, s.StatusMsg)
			case tt.wantError != "" && (s.Status != tracepb.Status_STATUS_CODE_ERROR || s.StatusMsg != tt.wantError):
				t.Errorf("status %v %q, want error %q", s.Status, s.StatusMsg, tt.wantError)
			}
			if got := s.Attributes.Str("error.type"); got != tt.wantType {
				t.Errorf("span error.type %q, want %q", got, tt.wantType)
			}
			if got := s.Attributes.Has("llm_observer.truncated"); got != tt.call.Truncated {
				t.Errorf("span llm_observer.truncated present %v, want %v", got, tt.call.Truncated)
			}
			p, ok := requests[model]
			if !ok || p.IntValue != 1 {
				t.Fatalf("requests point %+v, want a count of 1", p)
			}
			if got := p.Attributes.Str("error.type"); got != tt.wantType {
				t.Errorf("requests counted with error.type %q, want %q", got, tt.wantType)
			}
			if truncated, _ := p.Attributes["llm_observer.truncated"].(bool); truncated != tt.call.Truncated {
				t.Errorf("requests counted with llm_observer.truncated %v, want %v", p.Attributes["llm_observer.truncated"], tt.call.Truncated)
			}
			if errorsCounted[model] != (tt.wantType != "") {
				t.Errorf("counted as an error: %v, want %v", errorsCounted[model], tt.wantType != "")
			}
			if wantTimed := tt.call.Status != 0; timed[model] != wantTimed {
				t.Errorf("duration recorded: %v, want %v", timed[model], wantTimed)
			}
		})
	}
}
