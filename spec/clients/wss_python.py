# Python's websockets over TLS against a moonlet HTTPS server running
# spec/apps/https.lua: python3 wss_python.py PORT CA_FILE.  Echoes three
# messages through wss://localhost:PORT/ws, the certificate verified
# against CA_FILE; prints "echoed", or fails with the reason.
import asyncio
import ssl
import sys

import websockets


async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    url = "wss://localhost:%s/ws" % sys.argv[1]
    async with websockets.connect(url, ssl=ctx) as ws:
        for m in ["one", "two", "x" * 100000]:
            await ws.send(m)
            got = await ws.recv()
            assert got == m, "echo of %d bytes differs" % len(m)
    print("echoed")


asyncio.run(asyncio.wait_for(main(), 10))
