"""Opens N idle SOCKS5 tunnels through a proxy to a local sink and reports the proxy's RSS
growth per tunnel. Every tunnel completes a CONNECT and one echo, then stays silent.

Usage: python socks_idle.py PROXY_PORT PROXY_PID N
Prints: "idle N tunnels: RSS before KiB, after KiB, per tunnel KiB".
"""

import asyncio
import resource
import struct
import sys


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def main():
    proxy_port, pid, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = []

    async def sink(reader, writer):
        held.append(writer)
        data = await reader.read(16)
        writer.write(data)
        await writer.drain()

    server = await asyncio.start_server(sink, "127.0.0.1", 0, backlog=4096)
    sink_port = server.sockets[0].getsockname()[1]
    before = rss_kib(pid)
    clients = []
    sem = asyncio.Semaphore(200)

    async def one():
        async with sem:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", proxy_port), 20)
            w.write(b"\x05\x01\x00")
            await w.drain()
            assert await asyncio.wait_for(r.readexactly(2), 20) == b"\x05\x00"
            w.write(b"\x05\x01\x00\x01" + bytes([127, 0, 0, 1]) + struct.pack(">H", sink_port))
            await w.drain()
            reply = await asyncio.wait_for(r.readexactly(10), 20)
            assert reply[1] == 0, reply
            w.write(b"x")
            await w.drain()
            assert await asyncio.wait_for(r.readexactly(1), 20) == b"x"
            clients.append(w)

    await asyncio.gather(*(one() for _ in range(count)))
    await asyncio.sleep(2)
    after = rss_kib(pid)
    print(
        f"idle {count} tunnels: RSS before {before} KiB, after {after} KiB, "
        f"per tunnel {(after - before) / count:.2f} KiB"
    )
    for w in clients:
        w.close()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
