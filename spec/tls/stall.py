"""A TLS client that stops reading: the send timeout's far end.

    python3 spec/tls/stall.py PORT CA_FILE PATH SECONDS

Connects to localhost:PORT over TLS (verified with CA_FILE), sends GET
PATH, reads the first bytes of the answer, then prints its own port
("PORT\n") and reads nothing for SECONDS.  Then it reads what is left to
the end and prints "total BYTES end REASON": "eof" when the server
closed, "error" when the connection broke, "timeout" when bytes still
flowed after 10 s.
"""
import socket
import ssl
import sys
import time


def main():
    port, ca, path, stall = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                             float(sys.argv[4]))
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = ctx.wrap_socket(raw, server_hostname="localhost")
    conn.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n"
                  % path).encode())
    total = len(conn.recv(1))
    print(conn.getsockname()[1], flush=True)
    time.sleep(stall)
    reason, t0 = "eof", time.time()
    try:
        while True:
            data = conn.recv(1 << 20)
            if not data:
                break
            total += len(data)
            if time.time() - t0 > 10:
                reason = "timeout"
                break
    except (ssl.SSLError, OSError):
        reason = "error"
    print("total %d end %s" % (total, reason), flush=True)


main()
