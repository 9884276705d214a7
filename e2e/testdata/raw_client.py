# Sends the bytes read from stdin to host:port as they are, then reads the
# answer until the server closes or stays silent for a second, and prints
# how many bytes came back. Arguments: host, port. For requests no HTTP
# library would send: malformed heads, pipelined bursts.
import socket
import sys

data = sys.stdin.buffer.read()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(data)
s.settimeout(1.0)
got = 0
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += len(b)
except socket.timeout:
    pass
s.close()
print(got)
