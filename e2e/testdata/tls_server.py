# A TLS LLM server on Python's ssl module (so on the system libssl) that
# speaks OpenAI chat completions and Anthropic messages, streamed and not, at
# a fixed pace. Arguments: cert file, key file. It prints "listening PORT"
# once ready, then one JSON line per LLM request with what it measured
# itself: the model, when the request arrived and when each content chunk
# was written (Unix seconds), the ground truth the observer is checked with.
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# TLS_SERVER_UNPACED=N streams N chunks with no pause, for benchmarks.
UNPACED = int(os.environ.get("TLS_SERVER_UNPACED", "0"))
FIRST_CHUNK_DELAY = 0.0 if UNPACED else 0.150
CHUNK_GAP = 0.0 if UNPACED else 0.040
WORDS = [" word%d" % i for i in range(UNPACED)] if UNPACED else ["Bonjour", " tout", " le", " monde"]
out_lock = threading.Lock()


def report(model, arrived, content_times):
    with out_lock:
        print(json.dumps({"model": model, "arrived": arrived, "content_times": content_times}), flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle's
    # algorithm holds the second until the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def report(self, model, arrived, times):
        if not UNPACED:
            report(model, arrived, times)

    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        arrived = time.time()
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = req["model"]
        stream = bool(req.get("stream"))
        if self.path == "/v1/chat/completions":
            times = self.openai(model, stream)
        elif self.path == "/v1/messages":
            times = self.anthropic(model, stream)
        else:
            self.send_error(404)
            return
        self.report(model, arrived, times)

    def send_json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data):
        raw = data.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def openai(self, model, stream):
        rid = "chatcmpl-tls-" + model
        if not stream:
            time.sleep(FIRST_CHUNK_DELAY)
            self.send_json({
                "id": rid, "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(WORDS)}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": len(WORDS), "total_tokens": 11 + len(WORDS)},
            })
            return []
        self.start_stream()
        self.chunk("data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "model": model,
                                          "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}) + "\n\n")
        times = []
        time.sleep(FIRST_CHUNK_DELAY)
        for i, w in enumerate(WORDS):
            if i:
                time.sleep(CHUNK_GAP)
            times.append(time.time())
            self.chunk("data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "model": model,
                                              "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}) + "\n\n")
        self.chunk("data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "model": model,
                                          "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n")
        self.chunk("data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "model": model, "choices": [],
                                          "usage": {"prompt_tokens": 11, "completion_tokens": len(WORDS), "total_tokens": 11 + len(WORDS)}}) + "\n\n")
        self.chunk("data: [DONE]\n\n")
        self.end_stream()
        return times

    def anthropic(self, model, stream):
        mid = "msg_tls_" + model.replace(":", "_")
        if not stream:
            time.sleep(FIRST_CHUNK_DELAY)
            self.send_json({
                "id": mid, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": "".join(WORDS)}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 13, "output_tokens": len(WORDS)},
            })
            return []

        def event(name, obj):
            self.chunk("event: %s\ndata: %s\n\n" % (name, json.dumps(obj)))

        self.start_stream()
        event("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "usage": {"input_tokens": 13, "output_tokens": 1}}})
        event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        times = []
        time.sleep(FIRST_CHUNK_DELAY)
        for i, w in enumerate(WORDS):
            if i:
                time.sleep(CHUNK_GAP)
            times.append(time.time())
            event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})
        event("content_block_stop", {"type": "content_block_stop", "index": 0})
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                "usage": {"output_tokens": len(WORDS)}})
        event("message_stop", {"type": "message_stop"})
        self.end_stream()
        return times


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    ctx.set_alpn_protocols(["http/1.1"])
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("listening %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
