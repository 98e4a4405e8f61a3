# Request/response over one TCP connection, directly or through a CONNECT tunnel: the client
# asks for SIZE bytes (a request line "SIZE\n"), the server answers that many bytes, the client
# reads them all before asking again; prints the median and 90th percentile of the exchange
# time. Used by bench-exchange.sh.
#
# usage: exchange.py server PORT
#        exchange.py client PROXY_PORT|0 SERVER_PORT SIZE COUNT   (at most ~5 s of exchanges)
import socket
import sys
import time

MAX_SECONDS = 5


def read_line(conn):
    line = b""
    while not line.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            return None
        line += byte
    return line


def serve(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        try:
            while (line := read_line(conn)) is not None:
                conn.sendall(b"y" * int(line))
        except OSError:
            pass
        conn.close()


def connect(proxy_port, port):
    if not proxy_port:
        return socket.create_connection(("127.0.0.1", port))
    conn = socket.create_connection(("127.0.0.1", proxy_port))
    conn.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = conn.recv(1)
        if not byte:
            sys.exit("proxy closed during CONNECT")
        head += byte
    if b" 200" not in head.split(b"\r\n")[0]:
        sys.exit(f"CONNECT refused: {head!r}")
    return conn


def run(proxy_port, port, size, count):
    conn = connect(proxy_port, port)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = memoryview(bytearray(1 << 20))
    times = []
    deadline = time.monotonic() + MAX_SECONDS
    while len(times) < count and time.monotonic() < deadline:
        start = time.perf_counter()
        conn.sendall(f"{size}\n".encode())
        left = size
        while left:
            n = conn.recv_into(buf, min(left, len(buf)))
            if not n:
                sys.exit("connection closed mid-answer")
            left -= n
        times.append(time.perf_counter() - start)
    times.sort()
    median, p90 = times[len(times) // 2], times[int(len(times) * 0.9)]
    print(f"{median * 1e6:.0f} µs · {p90 * 1e6:.0f} µs ({len(times)} exchanges)")


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    else:
        run(*map(int, sys.argv[2:6]))
