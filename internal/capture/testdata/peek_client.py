# A client that peeks at the response before reading it, as some HTTP
# stacks do to see whether a kept-alive connection is still usable: the
# peeked bytes are read again afterwards and must be captured once.
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
body = b'{"model":"m","prompt":"p"}'
s = socket.create_connection((host, port))
s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
s.recv(8, socket.MSG_PEEK)             # recvfrom with MSG_PEEK
s.recvmsg(16, 0, socket.MSG_PEEK)      # recvmsg with MSG_PEEK
got = b""
while not got.endswith(b'{"model":"m","done":true}'):
    chunk = s.recv(4096)
    if not chunk:
        break
    got += chunk
s.close()
print("done", flush=True)
