# An HTTPS LLM client on Python's urllib-level http.client, keeping one TLS
# connection alive across calls. Arguments: CA file, host, port, then pairs of
# path and JSON body. Before each call after the first it waits for a line on
# stdin, so a test can start the observer between two calls of one
# connection. Prints one JSON line per call: the local port of the
# connection, the time the request was sent and the time the first content
# arrived (Unix seconds, the client's own clock), and the status.
import http.client
import json
import ssl
import sys
import time

cafile, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = list(zip(sys.argv[4::2], sys.argv[5::2]))
ctx = ssl.create_default_context(cafile=cafile)
conn = http.client.HTTPSConnection(host, port, context=ctx)
for i, (path, body) in enumerate(calls):
    if i:
        sys.stdin.readline()
    sent = time.time()
    conn.request("POST", path, body=body.encode(), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    first = None
    while True:
        line = resp.readline()
        if not line:
            break
        if first is None and (b'"content"' in line or b'text_delta' in line or b'"text"' in line):
            first = time.time()
    print(json.dumps({"port": conn.sock.getsockname()[1], "sent": sent, "first_content": first,
                      "status": resp.status}), flush=True)
conn.close()
