# A real LLM client for the end-to-end tests, using only the standard
# library: POSTs a JSON body and reads the response the way SDKs do (line by
# line when streaming). Prints the number of bytes read.
import json
import sys
import urllib.request

url, body = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
n = 0
with urllib.request.urlopen(req) as resp:
    if json.loads(body).get("stream"):
        for line in resp:
            n += len(line)
    else:
        n = len(resp.read())
print(n)
