# TLS records cut every way against a moonlet HTTPS server running
# spec/apps/https.lua: python3 tls_records.py PORT CA_FILE [VERSION].
# Python's ssl on memory BIOs, so the ciphertext's bytes are ours to cut,
# over one keep-alive connection (TLS 1.3, or 1.2 when VERSION is 1.2):
# a record sent a byte at a time; three requests in three records in one
# write; one request in two records; a record cut inside its header; a
# request, then a ping a moment later.  Prints each answer's body, one a
# line, or fails with the reason.
import socket
import ssl
import sys
import time

REQ = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"

port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
if len(sys.argv) > 3 and sys.argv[3] == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
plain = b""


def send(cuts=None):
    """Sends the ciphertext made so far: whole, or cut at 'cuts'
    (offsets; -1: a byte at a time), a pause between the pieces."""
    data = out.read()
    if cuts == -1:
        cuts = range(1, len(data))
    last = 0
    for at in list(cuts or []) + [len(data)]:
        sock.sendall(data[last:at])
        last = at
        time.sleep(0.002)


def feed():
    data = sock.recv(65536)
    if not data:
        raise SystemExit("the server closed the connection")
    inc.write(data)


def handshake():
    while True:
        try:
            tls.do_handshake()
            send()
            return
        except ssl.SSLWantReadError:
            send()
            feed()


def response():
    """One response's body (Content-Length), from the plaintext read."""
    global plain
    while True:
        head, sep, rest = plain.partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) >= length:
                plain = rest[length:]
                return rest[:length].decode()
        try:
            plain += tls.read(65536)
        except ssl.SSLWantReadError:
            feed()


handshake()
tls.write(REQ)
send(-1)                                  # a byte at a time
print(response())
for _ in range(3):                        # three records, one write
    tls.write(REQ)
send()
for _ in range(3):
    print(response())
tls.write(REQ[:9])                        # one request, two records
tls.write(REQ[9:])
send()
print(response())
tls.write(REQ)                            # cut inside the record header
send([3])
print(response())
tls.write(REQ)
send()
print(response())
time.sleep(0.1)                           # and the connection lives on
tls.write(REQ)
send()
print(response())
