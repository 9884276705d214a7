# A Bedrock runtime client for the end-to-end tests, standard library only:
# POSTs a ConverseStream request with SigV4-shaped credentials in its
# headers (from the E2E_HEADERS environment variable, never the command
# line) and reads the AWS event-stream answer message by message, as the
# SDKs do. Prints, as JSON, its own clock readings: when it sent the request
# and when it had read the first contentBlockDelta message whole.
import http.client
import json
import os
import struct
import sys
import time
import urllib.parse

url, body = sys.argv[1], sys.argv[2]
u = urllib.parse.urlsplit(url)
headers = {"Content-Type": "application/json", "Accept": "application/vnd.amazon.eventstream"}
headers.update(json.loads(os.environ.get("E2E_HEADERS", "{}")))


def read_exact(resp, n):
    data = b""
    while len(data) < n:
        piece = resp.read(n - len(data))
        if not piece:
            return None
        data += piece
    return data


def event_type(headers_bytes):
    """The :event-type of a message whose headers are all strings."""
    i = 0
    while i < len(headers_bytes):
        n = headers_bytes[i]
        name = headers_bytes[i + 1 : i + 1 + n].decode()
        kind = headers_bytes[i + 1 + n]
        if kind != 7:
            return None
        (vl,) = struct.unpack(">H", headers_bytes[i + 2 + n : i + 4 + n])
        value = headers_bytes[i + 4 + n : i + 4 + n + vl].decode()
        if name == ":event-type":
            return value
        i += 4 + n + vl
    return None


conn = http.client.HTTPConnection(u.hostname, u.port)
sent = time.time()
conn.request("POST", u.path, body=body.encode(), headers=headers)
resp = conn.getresponse()
first = None
messages = 0
while True:
    prelude = read_exact(resp, 12)
    if prelude is None:
        break
    total, hlen, _ = struct.unpack(">III", prelude)
    rest = read_exact(resp, total - 12)
    if rest is None:
        break
    messages += 1
    if first is None and event_type(rest[:hlen]) == "contentBlockDelta":
        first = time.time()
conn.close()
print(json.dumps({"sent": sent, "first_content": first, "status": resp.status, "messages": messages}))
