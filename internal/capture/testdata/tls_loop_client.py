# An HTTPS client for the TLS overhead benchmark: one keep-alive connection
# through Python's ssl module (the system libssl), one request per line read
# from stdin ("POST path body" or "GET path"), the whole response read, then
# "ok" (or the error) printed. Arguments: CA file, host, port.
import http.client
import ssl
import sys

ctx = ssl.create_default_context(cafile=sys.argv[1])
conn = http.client.HTTPSConnection(sys.argv[2], int(sys.argv[3]), context=ctx)
for line in sys.stdin:
    method, path, *rest = line.rstrip("\n").split(" ", 2)
    body = rest[0].encode() if rest else None
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    print("ok" if resp.status == 200 else "status %d" % resp.status, flush=True)
