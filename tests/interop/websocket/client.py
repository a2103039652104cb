"""Python `websockets` client checks through mtgate. Usage: client.py URL"""
import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

URL = sys.argv[1]
MB = 'request:flight.lookup:1.0.0:6a1e2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b\n{"flight":"XY123","fields":["gate","status"]}'


def ok(what):
    print(f"ok  python websockets: {what}", flush=True)


async def main():
    async with connect(URL, subprotocols=["mb.v1"], max_size=None, open_timeout=10) as ws:
        assert ws.subprotocol == "mb.v1", ws.subprotocol
        ok("subprotocol")
        await ws.send("text ✓")
        assert await asyncio.wait_for(ws.recv(), 10) == "text ✓"
        ok("text")
        blob = bytes(range(256)) * 1000
        await ws.send(blob)
        assert await asyncio.wait_for(ws.recv(), 10) == blob
        ok("binary 256000 bytes")
        await ws.send(MB)
        got = await asyncio.wait_for(ws.recv(decode=False), 10)
        assert got == MB.encode(), got
        ok("MB header line + newline + JSON, byte for byte")
        await ws.send(["frag", "mented"])
        assert await asyncio.wait_for(ws.recv(), 10) == "fragmented"
        ok("fragmented message")
        latency = await asyncio.wait_for(await ws.ping(), 10)
        ok(f"ping/pong ({latency * 1000:.1f} ms)")
        await ws.close(4002, "python done")
        assert ws.close_code == 4002 and ws.close_reason == "python done", (ws.close_code, ws.close_reason)
        ok("close 4002 echoed")
    async with connect(URL, max_size=None) as ws:
        try:
            # The close can arrive while the message is still being written: then send()
            # raises it rather than recv().
            await ws.send(b"\0" * (1024 * 1024 + 1))
            await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("oversized message was echoed")
        except ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1009, e
            assert e.rcvd.reason == "message exceeds 1048576 bytes", e.rcvd.reason
        ok("1 MiB + 1 byte closed with 1009")


asyncio.run(main())
