# A tiny HTTP/1.1 server for capture tests: answers every POST with a fixed
# JSON body, on the address given and a port chosen by the kernel, printed
# on stdout.
import http.server
import socket
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        body = b'{"model":"m","done":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(float(self.headers.get("X-Delay", "2")))
        body = b"plain"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET


srv = Server((sys.argv[1], 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
