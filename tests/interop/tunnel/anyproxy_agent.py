"""An AnyProxy-style agent, written only from the JSON messages of AnyProxy's API document.

It dials the gateway's WebSocket (no subprotocol, no Authorization header), logs in with an
`auth` message, checks that a `ping` comes back as a `pong` with the same timestamp, then
serves the gateway's `connect` requests: it dials the target, answers `connect_response`,
pumps `data` (base64) both ways and sends `close` when the target is done. Targets named by
--forbid are refused with an `error` message (code FORBIDDEN_HOST, with the connection id);
targets named by --refuse get `connect_response` success=false instead.

Every message is an envelope {"type": ..., "data": {...}} in one WebSocket text message.

Usage: anyproxy_agent.py --gateway ws://127.0.0.1:PORT/ws --username G --password P
           [--client-id ID] [--forbid HOST[:PORT]]... [--refuse HOST[:PORT]]...
           [--ready FILE]
Prints one JSON line per notable event on stdout. Exits 0 when the gateway closes the
connection after a clean login, 1 on any protocol violation or timeout.
"""

import argparse
import asyncio
import base64
import json
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

STEP = 10  # seconds: every wait on the gateway or a target is bounded by this
CHUNK = 32 * 1024
MAX_CONNECTIONS = 2000


def event(name, **fields):
    print(json.dumps({"event": name, **fields}), flush=True)


def message(kind, **data):
    return json.dumps({"type": kind, "data": data})


class Agent:
    def __init__(self, ws, args):
        self.ws = ws
        self.args = args
        self.targets = {}  # connection_id -> asyncio.StreamWriter
        self.pumps = set()
        self.send_lock = asyncio.Lock()
        self.pongs = asyncio.Queue(maxsize=16)
        self.first_pong = asyncio.Event()

    async def send(self, kind, **data):
        async with self.send_lock:
            await asyncio.wait_for(self.ws.send(message(kind, **data)), STEP)

    @staticmethod
    def listed(rules, host, port):
        return any(rule in (host, f"{host}:{port}") for rule in rules)

    async def ping_loop(self):
        """One ping now (the caller waits for its pong), then one every 5 s."""
        while True:
            stamp = int(time.time())
            await self.send("ping", timestamp=stamp)
            echoed = await asyncio.wait_for(self.pongs.get(), STEP)
            if echoed != stamp:
                raise AssertionError(f"pong echoed {echoed}, ping had {stamp}")
            event("pong", timestamp=echoed)
            self.first_pong.set()
            await asyncio.sleep(5)

    async def on_connect(self, data):
        cid = data["connection_id"]
        host, port = data["target_host"], int(data["target_port"])
        if data.get("protocol", "tcp") != "tcp":
            await self.send("connect_response", connection_id=cid, success=False,
                            message="only tcp")
            return
        if self.listed(self.args.forbid, host, port):
            event("forbidden", connection_id=cid, host=host, port=port)
            await self.send("error", code="FORBIDDEN_HOST", message=f"{host} is forbidden",
                            connection_id=cid)
            return
        if self.listed(self.args.refuse, host, port):
            event("refused", connection_id=cid, host=host, port=port)
            await self.send("connect_response", connection_id=cid, success=False,
                            message="Host is forbidden")
            return
        if len(self.targets) >= MAX_CONNECTIONS:
            await self.send("error", code="RATE_LIMITED", message="too many connections",
                            connection_id=cid)
            return
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), STEP)
        except (OSError, asyncio.TimeoutError) as e:
            event("dial_failed", connection_id=cid, error=str(e))
            await self.send("connect_response", connection_id=cid, success=False,
                            message=f"dial failed: {e}")
            return
        self.targets[cid] = writer
        await self.send("connect_response", connection_id=cid, success=True, message="")
        event("connected", connection_id=cid, host=host, port=port)
        self.spawn(self.pump_target(cid, reader))

    def spawn(self, coroutine):
        task = asyncio.create_task(coroutine)
        self.pumps.add(task)
        task.add_done_callback(self.pumps.discard)

    async def pump_target(self, cid, reader):
        """Target -> gateway: data messages, then close at EOF."""
        reason = "eof"
        try:
            while cid in self.targets:
                chunk = await reader.read(CHUNK)
                if not chunk:
                    break
                await self.send("data", connection_id=cid,
                                payload=base64.b64encode(chunk).decode())
        except (OSError, asyncio.TimeoutError) as e:
            reason = str(e)
        if self.targets.pop(cid, None) is not None:
            try:
                await self.send("close", connection_id=cid, reason=reason)
            except ConnectionClosed:
                pass

    async def on_data(self, data):
        writer = self.targets.get(data["connection_id"])
        if writer is None:
            return
        writer.write(base64.b64decode(data["payload"], validate=True))
        # No windows in this protocol: a slow target pauses the whole WebSocket here.
        await asyncio.wait_for(writer.drain(), STEP)

    def on_close(self, data):
        writer = self.targets.pop(data["connection_id"], None)
        if writer is not None:
            writer.close()
            event("closed_by_gateway", connection_id=data["connection_id"])

    async def serve(self):
        async for raw in self.ws:
            if not isinstance(raw, str):
                raise AssertionError("binary message in the JSON protocol")
            msg = json.loads(raw)
            kind, data = msg["type"], msg.get("data", {})
            if kind == "pong":
                self.pongs.put_nowait(data["timestamp"])
            elif kind == "connect":
                # Dialling may take a while; other connections keep moving meanwhile.
                self.spawn(self.on_connect(data))
            elif kind == "data":
                await self.on_data(data)
            elif kind == "close":
                self.on_close(data)
            elif kind == "error":
                event("error", **data)
            else:
                event("unexpected", type=kind)


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gateway", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--client-id", default="py-agent-1")
    p.add_argument("--forbid", action="append", default=[])
    p.add_argument("--refuse", action="append", default=[])
    p.add_argument("--ready")
    args = p.parse_args()

    async with connect(args.gateway, open_timeout=STEP, max_size=1 << 20) as ws:
        await ws.send(message("auth", username=args.username, password=args.password,
                              client_id=args.client_id))
        reply = json.loads(await asyncio.wait_for(ws.recv(), STEP))
        if reply.get("type") != "auth_response" or not reply["data"].get("success"):
            event("auth_refused", reply=reply)
            return 1
        event("auth_ok", message=reply["data"].get("message", ""))
        agent = Agent(ws, args)
        server = asyncio.create_task(agent.serve())
        pinger = asyncio.create_task(agent.ping_loop())
        ready = asyncio.create_task(agent.first_pong.wait())
        await asyncio.wait({server, pinger, ready}, timeout=STEP,
                           return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            event("failed", error="no pong to the first ping")
            server.cancel()
            pinger.cancel()
            return 1
        if args.ready:
            with open(args.ready, "w") as f:
                f.write("ready\n")
        done, _ = await asyncio.wait({server, pinger}, return_when=asyncio.FIRST_COMPLETED)
        if server in done:
            pinger.cancel()
            error = server.exception()
            if error is not None and not isinstance(error, ConnectionClosed):
                event("failed", error=repr(error))
                return 1
            event("gateway_closed")
            return 0
        server.cancel()
        error = pinger.exception()
        if isinstance(error, ConnectionClosed):
            event("gateway_closed")
            return 0
        event("failed", error=repr(error))
        return 1


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except (OSError, asyncio.TimeoutError, AssertionError, ConnectionClosed) as e:
        event("failed", error=repr(e))
        sys.exit(1)
