# Makes one plain HTTP request on a keep-alive connection, says so, and
# holds the connection until it is killed: a process that dies with its
# sockets open, without a close call the kernel side could see.
import http.client
import sys
import time

conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]))
conn.request("GET", "/index.html")
conn.getresponse().read()
print("ready", flush=True)
time.sleep(60)
