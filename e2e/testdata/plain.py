# Non-LLM HTTP traffic: a GET and a POST to paths no LLM API uses.
import sys
import urllib.request

base = sys.argv[1]
urllib.request.urlopen(base + "/healthz").read()
urllib.request.urlopen(urllib.request.Request(base + "/upload", data=b'{"model":"x","messages":[]}')).read()
