package genai

// Readers of the Bedrock wire structs; jsonwire.go says how readers work.

// The Bedrock structs join wireStructs while package variables are set,
// before jsonwire.go's init folds their names, so the reader tests
// cover them like the others.
var _ = registerWireStructs(
	bedrockWrapped{},
	bedrockRequest{},
	bedrockInference{},
	bedrockTools{},
	bedrockUsage{},
	bedrockMetrics{},
	bedrockBlock{},
	bedrockToolUse{},
	bedrockReasoning{},
	bedrockText{},
	bedrockResult{},
	bedrockMessage{},
	bedrockOutput{},
	bedrockResponse{},
	bedrockEvent{},
	bedrockChunkMetrics{},
	bedrockInvocationMetrics{},
	bedrockToolItem{},
	bedrockToolSpec{},
	bedrockSchema{},
)

// registerWireStructs adds wire structs defined beside their parser.
func registerWireStructs(v ...any) bool {
	wireStructs = append(wireStructs, v...)
	return true
}

func (v *bedrockRequest) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "messages":
			r.list(&v.Messages)
		case "system":
			r.span(&v.System)
		case "inferenceConfig":
			v.InferenceConfig.readFrom(r)
		case "toolConfig":
			v.ToolConfig.readFrom(r)
		case "anthropic_version":
			r.str(&v.AnthropicVersion)
		case "prompt":
			r.span(&v.Prompt)
		case "inputText":
			r.span(&v.InputText)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockInference) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "maxTokens":
			r.optInt(&v.MaxTokens)
		case "temperature":
			r.optFloat(&v.Temperature)
		case "topP":
			r.optFloat(&v.TopP)
		case "stopSequences":
			r.stopList(&v.StopSequences)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockTools) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "tools":
			r.span(&v.Tools)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockUsage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "inputTokens":
			r.optInt(&v.InputTokens)
		case "outputTokens":
			r.optInt(&v.OutputTokens)
		case "totalTokens":
			r.optInt(&v.TotalTokens)
		case "cacheReadInputTokens":
			r.optInt(&v.CacheReadInputTokens)
		case "cacheWriteInputTokens":
			r.optInt(&v.CacheWriteInputTokens)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockMetrics) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "latencyMs":
			r.optFloat(&v.LatencyMs)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockBlock) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "text":
			r.span(&v.Text)
		case "toolUse":
			v.ToolUse.readFrom(r)
		case "reasoningContent":
			v.ReasoningContent.readFrom(r)
		case "toolResult":
			v.ToolResult.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockToolUse) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "toolUseId":
			r.span(&v.ToolUseID)
		case "name":
			r.span(&v.Name)
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

func (v *bedrockReasoning) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "reasoningText":
			v.ReasoningText.readFrom(r)
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

func (v *bedrockText) readFrom(r *jsonReader) {
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

func (v *bedrockResult) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "toolUseId":
			r.span(&v.ToolUseID)
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

func (v *bedrockMessage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "role":
			r.str(&v.Role)
		case "content":
			readSlice(r, &v.Content, (*bedrockBlock).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockOutput) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "message":
			v.Message.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockResponse) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "output":
			v.Output.readFrom(r)
		case "stopReason":
			r.span(&v.StopReason)
		case "usage":
			v.Usage.readFrom(r)
		case "metrics":
			v.Metrics.readFrom(r)
		case "message":
			r.span(&v.Message)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockEvent) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "role":
			r.span(&v.Role)
		case "contentBlockIndex":
			r.optInt(&v.ContentBlockIndex)
		case "start":
			v.Start.readFrom(r)
		case "delta":
			v.Delta.readFrom(r)
		case "stopReason":
			r.span(&v.StopReason)
		case "usage":
			v.Usage.readFrom(r)
		case "metrics":
			v.Metrics.readFrom(r)
		case "message":
			r.span(&v.Message)
		case "bytes":
			r.span(&v.Bytes)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockChunkMetrics) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "amazon-bedrock-invocationMetrics":
			v.Metrics.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockInvocationMetrics) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "inputTokenCount":
			r.optInt(&v.InputTokenCount)
		case "outputTokenCount":
			r.optInt(&v.OutputTokenCount)
		case "invocationLatency":
			r.optFloat(&v.InvocationLatency)
		case "firstByteLatency":
			r.optFloat(&v.FirstByteLatency)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockToolItem) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "toolSpec":
			v.ToolSpec.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockToolSpec) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "name":
			r.str(&v.Name)
		case "description":
			r.str(&v.Description)
		case "inputSchema":
			v.InputSchema.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockSchema) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "json":
			r.span(&v.JSON)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *bedrockWrapped) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "messageStart":
			r.span(&v.MessageStart)
		case "contentBlockStart":
			r.span(&v.ContentBlockStart)
		case "contentBlockDelta":
			r.span(&v.ContentBlockDelta)
		case "contentBlockStop":
			r.span(&v.ContentBlockStop)
		case "messageStop":
			r.span(&v.MessageStop)
		case "metadata":
			r.span(&v.Metadata)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}
