package genai

import (
	"reflect"
	"strings"
)

// The wire structs' readers. Each reads the fields its struct's json tags
// name and skips the rest; the tags stay the specification, and the fuzz
// test checks every reader against encoding/json decoding the same struct.
// A field added to a wire struct needs its case here too (TestReadersCoverTags
// fails until it has one).

// chatProbe is what tells a chat body on a path of no known API.
type chatProbe struct {
	Model    span `json:"model"`
	Messages span `json:"messages"`
}

// wireStructs are the structs read with a jsonReader; their field names
// are what a key that matches none exactly is folded against.
var wireStructs = []any{
	chatRequest{}, chatChunk{}, vllmMetrics{}, llamaTimings{},
	ollamaRequest{}, ollamaLine{},
	anthropicRequest{}, anthropicMessage{}, anthropicEvent{},
	geminiRequest{}, geminiChunk{}, geminiUsage{},
	responsesRequest{}, responsesObject{}, responsesEvent{},
	// Input content, read only with capture on.
	contentPart{}, openAIMessage{}, ollamaInputMessage{}, roleContent{},
	responsesInputItem{}, toolItem{}, idOnly{},
	geminiInputContent{}, geminiSystemInstruction{}, errorOnly{},
	chatTurnMessage{},
	chatProbe{}, wireError{},
}

func init() {
	for _, v := range wireStructs {
		registerTags(reflect.TypeOf(v))
	}
}

// registerTags adds the json names of t's fields, and of the structs it
// holds, to foldedNames.
func registerTags(t reflect.Type) {
	for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			registerNames(name)
		}
		registerTags(f.Type)
	}
}

func (v *chatRequest) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "model":
			r.str(&v.Model)
		case "messages":
			r.list(&v.Messages)
		case "prompt":
			r.span(&v.Prompt)
		case "stream":
			r.optBool(&v.Stream)
		case "temperature":
			r.optFloat(&v.Temperature)
		case "top_p":
			r.optFloat(&v.TopP)
		case "top_k":
			r.optFloat(&v.TopK)
		case "frequency_penalty":
			r.optFloat(&v.FrequencyPenalty)
		case "presence_penalty":
			r.optFloat(&v.PresencePenalty)
		case "max_tokens":
			r.optInt(&v.MaxTokens)
		case "max_completion_tokens":
			r.optInt(&v.MaxCompletionTokens)
		case "n_predict":
			r.optInt(&v.NPredict)
		case "n":
			r.optInt(&v.N)
		case "seed":
			r.optInt(&v.Seed)
		case "stop":
			r.stopList(&v.Stop)
		case "tools":
			r.span(&v.Tools)
		case "functions":
			r.span(&v.Functions)
		case "response_format":
			v.ResponseFormat.readFrom(r)
		case "json_schema":
			r.span(&v.JSONSchema)
		case "service_tier":
			r.str(&v.ServiceTier)
		case "user":
			r.str(&v.User)
		case "safety_identifier":
			r.str(&v.SafetyIdentifier)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *typeOnly) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.str(&v.Type)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *chatChunk) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "id":
			r.span(&v.ID)
		case "model":
			r.span(&v.Model)
		case "system_fingerprint":
			r.span(&v.SystemFingerprint)
		case "service_tier":
			r.span(&v.ServiceTier)
		case "choices":
			readSlice(r, &v.Choices, (*chatChoice).readFrom)
		case "usage":
			v.Usage.readFrom(r)
		case "error":
			r.span(&v.Error)
		case "metrics":
			r.span(&v.Metrics)
		case "timings":
			r.span(&v.Timings)
		case "prompt_logprobs":
			r.span(&v.PromptLogprobs)
		case "kv_transfer_params":
			r.span(&v.KVTransferParams)
		case "object":
			r.span(&v.Object)
		case "message":
			r.span(&v.Message)
		case "type":
			r.span(&v.Type)
		case "code":
			r.span(&v.Code)
		case "content":
			r.span(&v.Content)
		case "stop":
			r.span(&v.Stop)
		case "stop_type":
			r.span(&v.StopType)
		case "tokens_predicted":
			r.optInt(&v.TokensPredicted)
		case "tokens_evaluated":
			r.optInt(&v.TokensEvaluated)
		case "tokens_cached":
			r.optInt(&v.TokensCached)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *chatChoice) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "index":
			r.optInt(&v.Index)
		case "delta":
			v.Delta.readFrom(r)
		case "message":
			v.Message.readFrom(r)
		case "text":
			r.span(&v.Text)
		case "finish_reason":
			r.span(&v.FinishReason)
		case "stop_reason":
			r.span(&v.StopReason)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *chatMessage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "role":
			r.span(&v.Role)
		case "content":
			r.span(&v.Content)
		case "reasoning_content":
			r.span(&v.ReasoningContent)
		case "reasoning":
			r.span(&v.Reasoning)
		case "refusal":
			r.span(&v.Refusal)
		case "tool_calls":
			readSlice(r, &v.ToolCalls, (*chatToolDelta).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *chatToolDelta) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "index":
			r.optInt(&v.Index)
		case "id":
			r.span(&v.ID)
		case "function":
			v.Function.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *chatFunction) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "name":
			r.span(&v.Name)
		case "arguments":
			r.span(&v.Arguments)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *wireUsage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "prompt_tokens":
			r.optInt(&v.PromptTokens)
		case "completion_tokens":
			r.optInt(&v.CompletionTokens)
		case "prompt_tokens_details":
			v.PromptTokensDetails.readFrom(r)
		case "completion_tokens_details":
			v.CompletionTokensDetails.readFrom(r)
		case "input_tokens":
			r.optInt(&v.InputTokens)
		case "output_tokens":
			r.optInt(&v.OutputTokens)
		case "input_tokens_details":
			v.InputTokensDetails.readFrom(r)
		case "output_tokens_details":
			v.OutputTokensDetails.readFrom(r)
		case "cache_read_input_tokens":
			r.optInt(&v.CacheReadInputTokens)
		case "cache_creation_input_tokens":
			r.optInt(&v.CacheCreationInputTokens)
		case "service_tier":
			r.span(&v.ServiceTier)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *cachedDetails) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "cached_tokens":
			r.optInt(&v.CachedTokens)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *reasoningDetails) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "reasoning_tokens":
			r.optInt(&v.ReasoningTokens)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *vllmMetrics) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "time_to_first_token_ms":
			r.optFloat(&v.TimeToFirstTokenMs)
		case "generation_time_ms":
			r.optFloat(&v.GenerationTimeMs)
		case "queue_time_ms":
			r.optFloat(&v.QueueTimeMs)
		case "mean_itl_ms":
			r.optFloat(&v.MeanITLMs)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *llamaTimings) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "prompt_n":
			r.optInt(&v.PromptN)
		case "prompt_ms":
			r.optFloat(&v.PromptMs)
		case "predicted_n":
			r.optInt(&v.PredictedN)
		case "predicted_ms":
			r.optFloat(&v.PredictedMs)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *ollamaRequest) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "model":
			r.str(&v.Model)
		case "messages":
			r.list(&v.Messages)
		case "prompt":
			r.span(&v.Prompt)
		case "system":
			r.span(&v.System)
		case "stream":
			r.optBool(&v.Stream)
		case "format":
			r.span(&v.Format)
		case "tools":
			r.span(&v.Tools)
		case "options":
			v.Options.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *ollamaOptions) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "temperature":
			r.optFloat(&v.Temperature)
		case "top_p":
			r.optFloat(&v.TopP)
		case "top_k":
			r.optFloat(&v.TopK)
		case "seed":
			r.optInt(&v.Seed)
		case "num_predict":
			r.optInt(&v.NumPredict)
		case "stop":
			r.stopList(&v.Stop)
		case "frequency_penalty":
			r.optFloat(&v.FrequencyPenalty)
		case "presence_penalty":
			r.optFloat(&v.PresencePenalty)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *ollamaLine) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "model":
			r.span(&v.Model)
		case "message":
			v.Message.readFrom(r)
		case "response":
			r.span(&v.Response)
		case "thinking":
			r.span(&v.Thinking)
		case "done":
			r.optBool(&v.Done)
		case "done_reason":
			r.span(&v.DoneReason)
		case "total_duration":
			r.optInt(&v.TotalDuration)
		case "load_duration":
			r.optInt(&v.LoadDuration)
		case "prompt_eval_count":
			r.optInt(&v.PromptEvalCount)
		case "prompt_eval_duration":
			r.optInt(&v.PromptEvalDuration)
		case "eval_count":
			r.optInt(&v.EvalCount)
		case "eval_duration":
			r.optInt(&v.EvalDuration)
		case "error":
			r.span(&v.Error)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *ollamaMessage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "role":
			r.span(&v.Role)
		case "content":
			r.span(&v.Content)
		case "thinking":
			r.span(&v.Thinking)
		case "tool_calls":
			readSlice(r, &v.ToolCalls, (*ollamaToolCall).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *ollamaToolCall) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "id":
			r.str(&v.ID)
		case "function":
			v.Function.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *ollamaFunction) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "name":
			r.str(&v.Name)
		case "arguments":
			r.span(&v.Arguments)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *anthropicRequest) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "model":
			r.str(&v.Model)
		case "max_tokens":
			r.optInt(&v.MaxTokens)
		case "system":
			r.span(&v.System)
		case "messages":
			r.list(&v.Messages)
		case "temperature":
			r.optFloat(&v.Temperature)
		case "top_p":
			r.optFloat(&v.TopP)
		case "top_k":
			r.optFloat(&v.TopK)
		case "stop_sequences":
			r.stopList(&v.StopSequences)
		case "stream":
			r.optBool(&v.Stream)
		case "tools":
			r.span(&v.Tools)
		case "service_tier":
			r.str(&v.ServiceTier)
		case "metadata":
			v.Metadata.readFrom(r)
		case "output_format":
			v.OutputFormat.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *anthropicMetadata) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "user_id":
			r.str(&v.UserID)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *anthropicMessage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.span(&v.Type)
		case "id":
			r.span(&v.ID)
		case "model":
			r.span(&v.Model)
		case "role":
			r.span(&v.Role)
		case "content":
			readSlice(r, &v.Content, (*anthropicBlock).readFrom)
		case "stop_reason":
			r.span(&v.StopReason)
		case "usage":
			v.Usage.readFrom(r)
		case "error":
			r.span(&v.Error)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *anthropicBlock) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.span(&v.Type)
		case "id":
			r.span(&v.ID)
		case "name":
			r.span(&v.Name)
		case "text":
			r.span(&v.Text)
		case "thinking":
			r.span(&v.Thinking)
		case "input":
			r.span(&v.Input)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *anthropicEvent) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.span(&v.Type)
		case "message":
			v.Message.readFrom(r)
		case "index":
			r.optInt(&v.Index)
		case "content_block":
			v.ContentBlock.readFrom(r)
		case "delta":
			v.Delta.readFrom(r)
		case "usage":
			v.Usage.readFrom(r)
		case "error":
			r.span(&v.Error)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *anthropicEventDelta) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.span(&v.Type)
		case "text":
			r.span(&v.Text)
		case "partial_json":
			r.span(&v.PartialJSON)
		case "thinking":
			r.span(&v.Thinking)
		case "stop_reason":
			r.span(&v.StopReason)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiRequest) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "contents":
			r.list(&v.Contents)
		case "systemInstruction":
			r.span(&v.SystemInstruction)
		case "tools":
			r.span(&v.Tools)
		case "generationConfig":
			v.GenerationConfig.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiConfig) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "temperature":
			r.optFloat(&v.Temperature)
		case "topP":
			r.optFloat(&v.TopP)
		case "topK":
			r.optFloat(&v.TopK)
		case "maxOutputTokens":
			r.optInt(&v.MaxOutputTokens)
		case "candidateCount":
			r.optInt(&v.CandidateCount)
		case "stopSequences":
			r.stopList(&v.StopSequences)
		case "seed":
			r.optInt(&v.Seed)
		case "presencePenalty":
			r.optFloat(&v.PresencePenalty)
		case "frequencyPenalty":
			r.optFloat(&v.FrequencyPenalty)
		case "responseMimeType":
			r.str(&v.ResponseMimeType)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiChunk) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "candidates":
			readSlice(r, &v.Candidates, (*geminiCandidate).readFrom)
		case "usageMetadata":
			r.span(&v.UsageMetadata)
		case "modelVersion":
			r.span(&v.ModelVersion)
		case "responseId":
			r.span(&v.ResponseID)
		case "promptFeedback":
			v.PromptFeedback.readFrom(r)
		case "error":
			r.span(&v.Error)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiCandidate) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "content":
			v.Content.readFrom(r)
		case "finishReason":
			r.span(&v.FinishReason)
		case "index":
			r.optInt(&v.Index)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiContent) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "role":
			r.span(&v.Role)
		case "parts":
			readSlice(r, &v.Parts, (*geminiPart).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiPart) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "text":
			r.span(&v.Text)
		case "thought":
			r.span(&v.Thought)
		case "functionCall":
			v.FunctionCall.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiFunctionCall) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "id":
			r.span(&v.ID)
		case "name":
			r.span(&v.Name)
		case "args":
			r.span(&v.Args)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiPromptFeedback) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "blockReason":
			r.span(&v.BlockReason)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiUsage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "promptTokenCount":
			r.optInt(&v.PromptTokenCount)
		case "candidatesTokenCount":
			r.optInt(&v.CandidatesTokenCount)
		case "cachedContentTokenCount":
			r.optInt(&v.CachedContentTokenCount)
		case "thoughtsTokenCount":
			r.optInt(&v.ThoughtsTokenCount)
		case "toolUsePromptTokenCount":
			r.optInt(&v.ToolUsePromptTokenCount)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *responsesRequest) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "model":
			r.str(&v.Model)
		case "input":
			r.list(&v.Input)
		case "instructions":
			r.span(&v.Instructions)
		case "stream":
			r.optBool(&v.Stream)
		case "max_output_tokens":
			r.optInt(&v.MaxOutputTokens)
		case "temperature":
			r.optFloat(&v.Temperature)
		case "top_p":
			r.optFloat(&v.TopP)
		case "tools":
			r.span(&v.Tools)
		case "service_tier":
			r.str(&v.ServiceTier)
		case "user":
			r.str(&v.User)
		case "safety_identifier":
			r.str(&v.SafetyIdentifier)
		case "previous_response_id":
			r.str(&v.PreviousResponseID)
		case "conversation":
			r.span(&v.Conversation)
		case "text":
			v.Text.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *responsesText) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "format":
			v.Format.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *responsesObject) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "id":
			r.span(&v.ID)
		case "model":
			r.span(&v.Model)
		case "status":
			r.span(&v.Status)
		case "service_tier":
			r.span(&v.ServiceTier)
		case "usage":
			v.Usage.readFrom(r)
		case "error":
			r.span(&v.Error)
		case "incomplete_details":
			v.IncompleteDetails.readFrom(r)
		case "conversation":
			r.span(&v.Conversation)
		case "metrics":
			r.span(&v.Metrics)
		case "output":
			readSlice(r, &v.Output, (*responsesItem).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *responsesIncomplete) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "reason":
			r.span(&v.Reason)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *responsesItem) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.span(&v.Type)
		case "id":
			r.span(&v.ID)
		case "call_id":
			r.span(&v.CallID)
		case "name":
			r.span(&v.Name)
		case "arguments":
			r.span(&v.Arguments)
		case "content":
			readSlice(r, &v.Content, (*responsesContent).readFrom)
		case "summary":
			readSlice(r, &v.Summary, (*responsesSummary).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *responsesContent) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.str(&v.Type)
		case "text":
			r.span(&v.Text)
		case "refusal":
			r.span(&v.Refusal)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *responsesSummary) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "text":
			r.span(&v.Text)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *responsesEvent) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.span(&v.Type)
		case "delta":
			r.span(&v.Delta)
		case "output_index":
			r.optInt(&v.OutputIndex)
		case "arguments":
			r.span(&v.Arguments)
		case "item":
			v.Item.readFrom(r)
		case "response":
			v.Response.readFrom(r)
		case "code":
			r.span(&v.Code)
		case "message":
			r.span(&v.Message)
		case "error":
			r.span(&v.Error)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}
func (v *contentPart) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.str(&v.Type)
		case "text":
			r.span(&v.Text)
		case "refusal":
			r.span(&v.Refusal)
		case "thinking":
			r.span(&v.Thinking)
		case "id":
			r.str(&v.ID)
		case "name":
			r.str(&v.Name)
		case "input":
			r.span(&v.Input)
		case "tool_use_id":
			r.str(&v.ToolUseID)
		case "content":
			r.span(&v.Content)
		case "is_error":
			r.optBool(&v.IsError)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *openAIMessage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "role":
			r.str(&v.Role)
		case "content":
			r.span(&v.Content)
		case "tool_calls":
			readSlice(r, &v.ToolCalls, (*ollamaToolCall).readFrom)
		case "tool_call_id":
			r.str(&v.ToolCallID)
		case "reasoning_content":
			r.span(&v.ReasoningContent)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *ollamaInputMessage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "role":
			r.str(&v.Role)
		case "content":
			r.span(&v.Content)
		case "thinking":
			r.span(&v.Thinking)
		case "tool_calls":
			readSlice(r, &v.ToolCalls, (*ollamaToolCall).readFrom)
		case "tool_name":
			r.str(&v.ToolName)
		case "tool_call_id":
			r.str(&v.ToolCallID)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *chatTurnMessage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "role":
			r.str(&v.Role)
		case "content":
			r.span(&v.Content)
		case "tool_call_id":
			r.str(&v.ToolCallID)
		case "tool_name":
			r.str(&v.ToolName)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *roleContent) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "role":
			r.str(&v.Role)
		case "content":
			r.span(&v.Content)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *responsesInputItem) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.str(&v.Type)
		case "role":
			r.str(&v.Role)
		case "content":
			r.span(&v.Content)
		case "call_id":
			r.str(&v.CallID)
		case "name":
			r.str(&v.Name)
		case "arguments":
			r.span(&v.Arguments)
		case "output":
			r.span(&v.Output)
		case "summary":
			readSlice(r, &v.Summary, (*summaryText).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *summaryText) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "text":
			r.str(&v.Text)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *toolItem) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "type":
			r.str(&v.Type)
		case "name":
			r.str(&v.Name)
		case "description":
			r.str(&v.Description)
		case "parameters":
			r.span(&v.Parameters)
		case "input_schema":
			r.span(&v.InputSchema)
		case "function":
			readPtr(r, &v.Function, (*funcDecl).readFrom)
		case "functionDeclarations":
			readSlice(r, &v.FunctionDeclarations, (*funcDecl).readFrom)
		case "googleSearch":
			readPtr(r, &v.GoogleSearch, (*skipValue).readFrom)
		case "codeExecution":
			readPtr(r, &v.CodeExecution, (*skipValue).readFrom)
		case "urlContext":
			readPtr(r, &v.URLContext, (*skipValue).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *funcDecl) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "name":
			r.str(&v.Name)
		case "description":
			r.str(&v.Description)
		case "parameters":
			r.span(&v.Parameters)
		case "parametersJsonSchema":
			r.span(&v.ParametersJSONSchema)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *idOnly) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "id":
			r.str(&v.ID)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}
func (v *geminiInputContent) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "role":
			r.str(&v.Role)
		case "parts":
			readSlice(r, &v.Parts, (*geminiInputPart).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiInputPart) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "text":
			r.span(&v.Text)
		case "thought":
			r.span(&v.Thought)
		case "functionCall":
			readPtr(r, &v.FunctionCall, (*geminiInputCall).readFrom)
		case "functionResponse":
			readPtr(r, &v.FunctionResponse, (*geminiInputResponse).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiInputCall) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "id":
			r.str(&v.ID)
		case "name":
			r.str(&v.Name)
		case "args":
			r.span(&v.Args)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiInputResponse) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "id":
			r.str(&v.ID)
		case "name":
			r.str(&v.Name)
		case "response":
			r.span(&v.Response)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiSystemInstruction) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "parts":
			readSlice(r, &v.Parts, (*geminiTextPart).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *geminiTextPart) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "text":
			r.span(&v.Text)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *errorOnly) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "error":
			r.span(&v.Error)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}
func (v *chatProbe) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "model":
			r.span(&v.Model)
		case "messages":
			r.span(&v.Messages)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *wireError) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "message":
			r.span(&v.Message)
		case "type":
			r.span(&v.Type)
		case "code":
			r.span(&v.Code)
		case "status":
			r.span(&v.Status)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}
