"""A transparent TCP proxy that delays every byte by a fixed time, for the
multi-host fault tests (netns.py starts it; see Rig.delay).

This machine's kernel has no netem qdisc, so delay is made in user space:
the proxy runs inside a host's network namespace, and a nat rule there
(iptables -t nat -A OUTPUT -d PEER -p tcp ... -j REDIRECT) sends the TCP
connections that host opens to PEER to the proxy's port instead.  The proxy
finds where each was going (SO_ORIGINAL_DST), connects there itself -- its
own sockets carry a firewall mark the nat rule skips -- and forwards each
direction with every chunk held back until `delay` after it arrived, in
order.  A round trip thus gains 2 x delay, whichever side sends.

Limits: only connections opened after the rule is in place are delayed
(nat applies when a connection starts); each chunk is delayed, not each
packet, and throughput is what one Python thread can copy (ample for the
tests' load).

    python3 delayproxy.py --port 17000 --delay-ms 40 --mark 98
"""
import argparse
import asyncio
import socket
import struct
import sys

SO_ORIGINAL_DST = 80


def original_dst(sock):
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, ip = struct.unpack("!2xH4s8x", raw)
    return socket.inet_ntoa(ip), port


async def pump(reader, writer, delay):
    """Copies reader to writer, each chunk `delay` seconds after it came."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def read():
        try:
            while True:
                data = await reader.read(65536)
                await queue.put((loop.time() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((loop.time() + delay, b""))

    task = asyncio.create_task(read())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        task.cancel()


async def handle(creader, cwriter, delay, mark):
    sock = cwriter.get_extra_info("socket")
    try:
        host, port = original_dst(sock)
        up = socket.socket()
        up.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        up.setblocking(False)
        await asyncio.get_running_loop().sock_connect(up, (host, port))
        ureader, uwriter = await asyncio.open_connection(sock=up)
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(pump(creader, uwriter, delay), pump(ureader, cwriter, delay))
    for w in (cwriter, uwriter):
        w.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--mark", type=int, required=True)
    a = ap.parse_args()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, a.delay_ms / 1000.0, a.mark), "0.0.0.0", a.port)
    print("delayproxy: port %d, %.1f ms each way" % (a.port, a.delay_ms), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
