# bench peer: the same two routes as apps/pg.lua with aiohttp + asyncpg
# (Debian's python3-aiohttp and python3-asyncpg), one process, a pool of
# 10.  Usage: aiohttp_pg.py PORT URL; prints "listening on PORT".
import asyncio
import json
import random
import sys

import asyncpg
from aiohttp import web

SQL = "SELECT id, randomnumber FROM world WHERE id = $1"


async def db(request):
    async with request.app["pool"].acquire() as conn:
        row = await conn.fetchrow(SQL, random.randint(1, 10000))
    return web.Response(text=json.dumps(dict(row)),
                        content_type="application/json")


async def queries(request):
    out = []
    async with request.app["pool"].acquire() as conn:
        for _ in range(20):
            row = await conn.fetchrow(SQL, random.randint(1, 10000))
            out.append(dict(row))
    return web.Response(text=json.dumps(out),
                        content_type="application/json")


async def setup(app):
    app["pool"] = await asyncpg.create_pool(sys.argv[2], min_size=10,
                                            max_size=10)


def main():
    app = web.Application()
    app.on_startup.append(setup)
    app.router.add_get("/db", db)
    app.router.add_get("/queries", queries)
    print("listening on", sys.argv[1], flush=True)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]),
                access_log=None, print=None)


main()
