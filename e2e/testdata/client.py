# A real LLM client for the end-to-end tests, using only the standard
# library: POSTs a JSON body and reads the response the way SDKs do (line by
# line when streaming). Prints, as JSON, its own clock readings: when it sent
# the request and when it read the first line carrying generated content.
import json
import sys
import time
import urllib.request

url, body = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
# Build the opener first, so that the clock reading below is taken right
# before the connection and the request, not before urllib's own set-up.
opener = urllib.request.build_opener()
sent = time.time()
first = None
with opener.open(req) as resp:
    if json.loads(body).get("stream"):
        for line in resp:
            if first is None and line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
                first = time.time()
    else:
        resp.read()
print(json.dumps({"sent": sent, "first_content": first}))
