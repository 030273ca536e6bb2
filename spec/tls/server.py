"""A TLS backend for the https client specs, on Python's ssl (OpenSSL).

    python3 spec/tls/server.py CERT KEY [CLIENT_CA]

Prints "PORT\n" once it listens on 127.0.0.1 (an ephemeral port), then
serves HTTP/1.1 over TLS 1.2/1.3 until killed.  With CLIENT_CA, clients
must show a certificate that CA signed.  Routes:
  /hello        "hello" (Content-Length, keep-alive)
  /sni          the SNI name this connection sent ("" for none)
  /peer         the client certificate's subject CN, or ""
  /stats        {"conns": TCP connections, "reused": resumed handshakes,
                 "handshakes": completed handshakes, "slow": /slow requests}
  /slow?ms=N    "slow" after N ms (keep-alive)
  /close        "closing" with Content-Length and Connection: close, then
                close_notify and FIN
  /chunked      a chunked body of 3 pieces
  /eof          a close-delimited body, then close_notify and FIN
  /truncate     part of a close-delimited body, then a FIN without
                close_notify
  /hang         no answer; the connection stays open
"""
import json
import socket
import ssl
import sys
import threading
import time

stats = {"conns": 0, "reused": 0, "handshakes": 0, "slow": 0}
lock = threading.Lock()


def count(key):
    with lock:
        stats[key] += 1


def read_request(conn, buf):
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None, b""
        rest += data
    return lines[0].split(" ")[1], rest[length:]


def send(conn, body, status="200 OK", extra=""):
    if isinstance(body, str):
        body = body.encode()
    conn.sendall(("HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n"
                  % (status, len(body), extra)).encode() + body)


def peer_cn(conn):
    cert = conn.getpeercert()
    for rdn in (cert or {}).get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return ""


def serve(conn, sni):
    buf = b""
    while True:
        path, buf = read_request(conn, buf)
        if path is None:
            return
        path, _, query = path.partition("?")
        if path == "/hello":
            send(conn, "hello")
        elif path == "/sni":
            send(conn, sni.get("name") or "")
        elif path == "/peer":
            send(conn, peer_cn(conn))
        elif path == "/stats":
            with lock:
                send(conn, json.dumps(stats))
        elif path == "/chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                         b"\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n"
                         b"0\r\n\r\n")
        elif path == "/eof":
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                         b"all of it")
            conn.unwrap().close()      # close_notify, then FIN
            return
        elif path == "/truncate":
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                         b"only a part")
            socket.socket.shutdown(conn, socket.SHUT_RDWR)  # no close_notify
            return
        elif path == "/slow":
            count("slow")
            time.sleep(int(query.partition("ms=")[2] or 0) / 1000)
            send(conn, "slow")
        elif path == "/close":
            send(conn, "closing", extra="Connection: close\r\n")
            conn.unwrap().close()      # close_notify, then FIN
            return
        elif path == "/hang":
            while conn.recv(65536):
                pass
            return
        else:
            send(conn, "not found", "404 Not Found")


def handle(raw, ctx):
    count("conns")
    try:
        conn = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError):
        raw.close()
        return
    count("handshakes")
    if conn.session_reused:
        count("reused")
    try:
        serve(conn, {"name": getattr(conn, "sni_name", None)})
    except (ssl.SSLError, OSError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    cert, key = sys.argv[1], sys.argv[2]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    if len(sys.argv) > 3:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(sys.argv[3])

    def on_sni(sock, name, context):
        sock.sni_name = name
    ctx.sni_callback = on_sni
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    print(srv.getsockname()[1], flush=True)
    while True:
        raw, _ = srv.accept()
        threading.Thread(target=handle, args=(raw, ctx), daemon=True).start()


main()
