# An LLM client that makes several calls on one keep-alive connection, with
# the standard library's http.client. Arguments: host, port, path, then one
# JSON body per call. Request headers come as a JSON object in the
# E2E_HEADERS environment variable, so credentials stay off the command line.
# Prints, as JSON, the local port of the connection at each call.
import http.client
import json
import os
import sys

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
headers = {"Content-Type": "application/json"}
headers.update(json.loads(os.environ.get("E2E_HEADERS", "{}")))
conn = http.client.HTTPConnection(host, port)
ports = []
for body in sys.argv[4:]:
    conn.request("POST", path, body=body.encode(), headers=headers)
    resp = conn.getresponse()
    if resp.status != 200:
        sys.exit("status %d: %s" % (resp.status, resp.read()))
    resp.read()
    ports.append(conn.sock.getsockname()[1])
conn.close()
print(json.dumps({"ports": ports}))
