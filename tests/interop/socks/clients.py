"""Clients nobody here wrote, through mtgate's SOCKS5, HTTP and mixed listeners.

python-socks (socks4, socks5 with and without credentials, http CONNECT), PyRoxi 1.0.0
(pyroxi.Connection over socks5 and http, with authentication) and httpx (HTTP forward proxy,
with credentials, and a 407 without) reach a local HTTP origin on 127.0.0.1 and ::1 through a
server started here. Everything listens on loopback; every wait is bounded.

Usage: python clients.py path/to/mtgate
"""

import asyncio
import http.server
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import pyroxi
from python_socks import ProxyType
from python_socks.sync import Proxy

USER, PASSWORD = "alice", "wonder land:42"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"origin {self.path} via {self.headers.get('Via', '-')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Origin6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def start_origins():
    v4 = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    v6 = Origin6(("::1", 0), Origin)
    for server in (v4, v6):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return v4.server_address[1], v6.server_address[1]


def wait_port(port, what):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start on port {port}")


def raw_get(sock, host, path):
    """A GET over an established tunnel; returns the body."""
    sock.settimeout(10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body.decode()


def check(what, got, expected):
    if expected not in got:
        raise SystemExit(f"FAIL {what}: {got!r} does not contain {expected!r}")
    print(f"ok   {what}")


def python_socks(socks, socks_open, http, port4, port6):
    from urllib.parse import quote

    creds = f"{quote(USER)}:{quote(PASSWORD, safe='')}"
    cases = [
        ("python-socks socks5 + auth, remote DNS", f"socks5://{creds}@127.0.0.1:{socks}", "localhost", port4, True),
        ("python-socks socks5 + auth, IPv6 target", f"socks5://{creds}@127.0.0.1:{socks}", "::1", port6, True),
        ("python-socks socks5, local DNS", f"socks5://127.0.0.1:{socks_open}", "localhost", port4, False),
        ("python-socks socks4a", f"socks4://127.0.0.1:{socks_open}", "localhost", port4, True),
        ("python-socks socks4", f"socks4://127.0.0.1:{socks_open}", "127.0.0.1", port4, False),
        ("python-socks http CONNECT + auth", f"http://{creds}@127.0.0.1:{http}", "127.0.0.1", port4, True),
    ]
    for what, url, host, port, rdns in cases:
        proxy = Proxy.from_url(url, rdns=rdns)
        sock = proxy.connect(dest_host=host, dest_port=port, timeout=10)
        try:
            check(what, raw_get(sock, host, "/ps"), "origin /ps")
        finally:
            sock.close()
    # A wrong password is refused.
    proxy = Proxy.create(ProxyType.SOCKS5, "127.0.0.1", socks, username=USER, password="nope")
    try:
        proxy.connect(dest_host="127.0.0.1", dest_port=port4, timeout=10).close()
        raise SystemExit("FAIL python-socks: a wrong password was accepted")
    except SystemExit:
        raise
    except Exception as e:  # python_socks.ProxyError
        print(f"ok   python-socks wrong password refused ({type(e).__name__})")


async def pyroxi_checks(socks, http, port4):
    for kind, port in (("socks5", socks), ("http", http)):
        conn = pyroxi.Connection("127.0.0.1", port, kind, username=USER, password=PASSWORD, timeout=10)
        try:
            assert await conn.connect("127.0.0.1", port4)
            await conn.send_data(f"GET /pyroxi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = await conn.receive_all(timeout=10)
            check(f"PyRoxi {kind} + auth", data.decode(errors="replace"), "origin /pyroxi")
        finally:
            await conn.disconnect()
    conn = pyroxi.Connection("127.0.0.1", http, "http", username=USER, password="nope", timeout=10)
    try:
        await conn.connect("127.0.0.1", port4)
        raise SystemExit("FAIL PyRoxi: a wrong password was accepted")
    except (pyroxi.ProxyAuthenticationError, pyroxi.ProxyConnectionError) as e:
        # PyRoxi 1.0.0 wraps its ProxyAuthenticationError into a ProxyConnectionError.
        check("PyRoxi http wrong password refused", str(e), "authentication required")
    finally:
        await conn.disconnect()


def httpx_checks(http, mixed, port4, port6):
    from urllib.parse import quote

    creds = f"{quote(USER)}:{quote(PASSWORD, safe='')}"
    with httpx.Client(proxy=f"http://{creds}@127.0.0.1:{http}", timeout=10) as client:
        # Not an IPv6 literal: httpx 0.28 writes the request target without brackets
        # (`GET http://::1:8080/ HTTP/1.1`), which mtgate rightly answers with 400.
        for url in (f"http://127.0.0.1:{port4}/hx", f"http://localhost:{port4}/hx-name"):
            r = client.get(url)
            assert r.status_code == 200, r
            check(f"httpx forward {url}", r.text, "via 1.1 mtgate")
        # Keep-alive: several requests on the client's pool.
        for i in range(5):
            assert client.get(f"http://127.0.0.1:{port4}/k{i}").status_code == 200
        print("ok   httpx keep-alive requests")
    with httpx.Client(proxy=f"http://127.0.0.1:{http}", timeout=10) as client:
        r = client.get(f"http://127.0.0.1:{port4}/")
        assert r.status_code == 407, r
        check("httpx 407 challenge", r.headers.get("proxy-authenticate", ""), 'Basic realm="interop"')
    with httpx.Client(proxy=f"http://127.0.0.1:{mixed}", timeout=10) as client:
        check("httpx through mixed", client.get(f"http://127.0.0.1:{port4}/mx").text, "origin /mx")


def main():
    mtgate = os.path.abspath(sys.argv[1])
    port4, port6 = start_origins()
    socks, socks_open, http, mixed, metrics = (free_port() for _ in range(5))
    quoted = PASSWORD.replace("\\", "\\\\").replace('"', '\\"')
    allow = '[{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }]'
    config = f"""
[metrics]
listen = "127.0.0.1:{metrics}"
[[socks5]]
name = "socks"
listen = ["127.0.0.1:{socks}"]
rules = {allow}
[socks5.users]
{USER} = "{quoted}"
[[socks5]]
name = "socks-open"
listen = ["127.0.0.1:{socks_open}"]
rules = {allow}
[[http]]
name = "http"
listen = ["127.0.0.1:{http}"]
connect_ports = ["1024-65535"]
via = true
realm = "interop"
rules = {allow}
[http.users]
{USER} = "{quoted}"
[[mixed]]
name = "mixed"
listen = ["127.0.0.1:{mixed}"]
rules = {allow}
"""
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "mtgate.toml")
        with open(path, "w") as f:
            f.write(config)
        log = open(os.path.join(work, "mtgate.log"), "w")
        server = subprocess.Popen([mtgate, "run", "--config", path], stdout=log, stderr=subprocess.STDOUT)
        try:
            for port in (socks, socks_open, http, mixed):
                wait_port(port, "mtgate")
            python_socks(socks, socks_open, http, port4, port6)
            asyncio.run(asyncio.wait_for(pyroxi_checks(socks, http, port4), 60))
            httpx_checks(http, mixed, port4, port6)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
            with open(os.path.join(work, "mtgate.log")) as f:
                text = f.read()
            if PASSWORD in text or "nope" in text:
                raise SystemExit("FAIL a password appeared in mtgate's log")
    print("all SOCKS/HTTP interop checks passed")


if __name__ == "__main__":
    main()
