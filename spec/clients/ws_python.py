# Python's websockets (Debian python3-websockets) against a moonlet
# server running spec/apps/ws.lua: python3 ws_python.py PORT.  Prints
# "ok NAME" or "not ok NAME: why" per check; exits 1 on any failure.
import asyncio
import sys

import websockets

PORT = int(sys.argv[1])
BASE = "ws://127.0.0.1:%d" % PORT
failed = 0


def report(name, err=None):
    global failed
    if err is None:
        print("ok " + name)
    else:
        failed += 1
        print("not ok %s: %s" % (name, err))


async def check(name, coro):
    try:
        await asyncio.wait_for(coro, 10)
        report(name)
    except Exception as e:  # any failure is the check's
        report(name, repr(e))


async def echo_both():
    async with websockets.connect(BASE + "/plain", compression=None,
                                  max_size=2 ** 21) as ws:
        for n in (0, 125, 126, 65535, 65536, 2 ** 20):
            data = bytes([n % 251]) * n
            await ws.send(data)
            assert await ws.recv() == data, "binary %d" % n
            text = "\u00e9" * (n // 2)
            await ws.send(text)
            assert await ws.recv() == text, "text %d" % n


async def subprotocol():
    async with websockets.connect(BASE + "/echo",
                                  subprotocols=["x", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2", ws.subprotocol
        assert await ws.recv() == "protocol chat.v2"


async def deflate():
    async with websockets.connect(BASE + "/echo") as ws:
        exts = [e.name for e in ws.extensions]
        assert exts == ["permessage-deflate"], exts
        for n in (1, 100, 20000):
            text = "jumps over the lazy dog " * n
            await ws.send(text)
            assert await ws.recv() == text, "echo %d" % n


async def ping_pong():
    async with websockets.connect(BASE + "/plain") as ws:
        waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(waiter, 2)


async def fragments():
    async with websockets.connect(BASE + "/plain") as ws:
        await ws.send(iter(["one ", "two ", "three"]))
        assert await ws.recv() == "one two three"


async def close_codes():
    async with websockets.connect(BASE + "/plain") as ws:
        await ws.close(4002, "done")
        assert ws.close_code == 4002, ws.close_code
    ws = await websockets.connect(BASE + "/bye")
    assert await ws.recv() == "bye"
    try:
        await ws.recv()
        raise AssertionError("no close")
    except websockets.ConnectionClosedOK as e:
        assert e.code == 1000, e.code
    ws = await websockets.connect(BASE + "/boom")
    assert await ws.recv() == "about to fail"
    try:
        await ws.recv()
        raise AssertionError("no close")
    except websockets.ConnectionClosedError as e:
        assert e.code == 1011, e.code


async def main():
    await check("handshake and subprotocol", subprotocol())
    await check("echo text and binary at every length", echo_both())
    await check("permessage-deflate negotiated and round-tripped", deflate())
    await check("ping answered with a pong", ping_pong())
    await check("fragmented message", fragments())
    await check("close codes: echoed, 1000, 1011", close_codes())


asyncio.run(main())
sys.exit(1 if failed else 0)
