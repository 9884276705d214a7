"""An agent loop, standard library only, for the end-to-end tests.

    agent.py LLM_URL MCP_URL [sse]

It asks the model (OpenAI chat completions at LLM_URL) a question with one
tool, get_weather; the model answers with a tool call. The agent then runs
the tool on the MCP server at MCP_URL over the Streamable HTTP transport:
initialize, notifications/initialized, tools/list, two calls that fail (a
city the tool has no weather for, which the tool reports with isError, and
a tool the server does not have, a JSON-RPC error) and the call the model
asked for. It sends that result back in a second chat request and prints
what the test checks against the telemetry, as JSON: the session id the
server gave, the tool call's id and the final answer.

With "sse" it speaks MCP's older HTTP+SSE transport instead: a GET opens
the event stream, whose "endpoint" event names the URL to POST messages
to; each POST is acknowledged with 202 and its answer comes as a "message"
event on the stream.
"""

import http.client
import json
import sys
import threading
import urllib.parse


class Endpoint:
    """A keep-alive HTTP connection to one URL."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.path = u.path + ("?" + u.query if u.query else "")
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def post(self, body, headers):
        data = json.dumps(body).encode()
        h = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        h.update(headers)
        self.conn.request("POST", self.path, body=data, headers=h)
        resp = self.conn.getresponse()
        return resp, resp.read()


def sse_messages(raw):
    """The JSON-RPC messages of an event-stream body."""
    out, data = [], []
    for line in raw.decode().splitlines() + [""]:
        if line == "":
            if data:
                out.append(json.loads("\n".join(data)))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    return out


class MCPClient:
    def __init__(self, url):
        self.ep = Endpoint(url)
        self.session = None
        self.protocol = None
        self.next_id = 1

    def headers(self):
        h = {"Accept": "application/json, text/event-stream"}
        if self.session:
            h["Mcp-Session-Id"] = self.session
        if self.protocol:
            h["Mcp-Protocol-Version"] = self.protocol
        return h

    def request(self, method, params):
        rid = self.next_id
        self.next_id += 1
        resp, raw = self.ep.post({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, self.headers())
        if resp.status != 200:
            raise SystemExit(f"{method}: HTTP {resp.status} {raw!r}")
        if method == "initialize":
            self.session = resp.getheader("Mcp-Session-Id")
        if resp.getheader("Content-Type", "").startswith("text/event-stream"):
            msgs = sse_messages(raw)
        else:
            msgs = [json.loads(raw)]
        for m in msgs:
            if m.get("id") == rid and ("result" in m or "error" in m):
                return m
        raise SystemExit(f"{method}: no answer in {raw!r}")

    def notify(self, method):
        resp, raw = self.ep.post({"jsonrpc": "2.0", "method": method}, self.headers())
        if resp.status != 202:
            raise SystemExit(f"{method}: HTTP {resp.status} {raw!r}")


class SSEMCPClient(MCPClient):
    """The HTTP+SSE transport: answers arrive on the GET stream."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.stream = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.stream.request("GET", u.path, headers={"Accept": "text/event-stream"})
        self.events = self.stream.getresponse()
        if self.events.status != 200:
            raise SystemExit(f"GET {u.path}: HTTP {self.events.status}")
        name, data = self.read_event()
        if name != "endpoint":
            raise SystemExit(f"first event {name!r}, want endpoint")
        endpoint = urllib.parse.urljoin(url, data)
        self.ep = Endpoint(endpoint)
        self.session = urllib.parse.parse_qs(urllib.parse.urlsplit(endpoint).query)["sessionid"][0]
        self.protocol = None
        self.next_id = 1
        self.answers = {}
        self.cond = threading.Condition()
        threading.Thread(target=self.listen, daemon=True).start()

    def read_event(self):
        name, data = "message", []
        while True:
            line = self.events.readline()
            if not line:
                return None, None
            line = line.decode().rstrip("\r\n")
            if line == "":
                if data:
                    return name, "\n".join(data)
                continue
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))

    def listen(self):
        while True:
            name, data = self.read_event()
            if name is None:
                return
            m = json.loads(data)
            if "id" in m and ("result" in m or "error" in m):
                with self.cond:
                    self.answers[m["id"]] = m
                    self.cond.notify_all()

    def headers(self):
        return {}

    def request(self, method, params):
        rid = self.next_id
        self.next_id += 1
        resp, raw = self.ep.post({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, self.headers())
        if resp.status != 202:
            raise SystemExit(f"{method}: HTTP {resp.status} {raw!r}")
        with self.cond:
            if not self.cond.wait_for(lambda: rid in self.answers, timeout=10):
                raise SystemExit(f"{method}: no answer on the stream")
            return self.answers.pop(rid)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def chat(llm, messages):
    resp, raw = llm.post({"model": "e2e-agent", "messages": messages, "tools": [WEATHER_TOOL]}, {})
    if resp.status != 200:
        raise SystemExit(f"chat: HTTP {resp.status} {raw!r}")
    return json.loads(raw)["choices"][0]["message"]


def main():
    llm = Endpoint(sys.argv[1])
    mcp = SSEMCPClient(sys.argv[2]) if sys.argv[3:] == ["sse"] else MCPClient(sys.argv[2])

    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    asked = chat(llm, messages)
    call = asked["tool_calls"][0]
    messages.append(asked)

    init = mcp.request("initialize", {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "e2e-agent", "version": "1.0"},
    })
    if not isinstance(mcp, SSEMCPClient):
        mcp.protocol = init["result"]["protocolVersion"]
    mcp.notify("notifications/initialized")
    tools = mcp.request("tools/list", {})
    assert any(t["name"] == "get_weather" for t in tools["result"]["tools"]), tools

    failed = mcp.request("tools/call", {"name": "get_weather", "arguments": {"city": "Atlantis"}})
    assert failed["result"].get("isError") is True, failed
    unknown = mcp.request("tools/call", {"name": "launch_rocket", "arguments": {}})
    assert unknown["error"]["code"] == -32602, unknown

    args = json.loads(call["function"]["arguments"])
    result = mcp.request("tools/call", {"name": call["function"]["name"], "arguments": args})
    text = result["result"]["content"][0]["text"]

    messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
    answer = chat(llm, messages)
    print(json.dumps({"session": mcp.session, "tool_call_id": call["id"], "answer": answer["content"]}))


main()
