# A keep-alive client whose first exchange straddles the observer's start:
# it sends a slow GET, says so, then reads the answer and sends an LLM call
# on the same connection.
import http.client
import sys

conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]))
conn.request("GET", "/slow", headers={"X-Delay": sys.argv[3]})
print("sent", flush=True)
conn.getresponse().read()
conn.request("POST", "/api/generate", body=b'{"model":"m","prompt":"p"}', headers={"Content-Type": "application/json"})
conn.getresponse().read()
print("done", flush=True)
