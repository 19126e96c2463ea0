"""libzmq XPUB / XSUB peers (through pyzmq) for zocket's tests/xpubsub.rs.

usage: xpubsub.py ROLE [ENDPOINT...]
Prints one line per event on stdout ("ready ...", "got <frames joined by |>", ...); binary
frames are shown with \\x01 / \\x00 escapes for the first byte. Exits 0 when its script is
done, 3 on a timeout. Every wait is bounded. A role that binds binds a random port and
prints it ("ready tcp://127.0.0.1:PORT").
"""
import sys
import time

import zmq

role, *args = sys.argv[1:]
ctx = zmq.Context()
ctx.setsockopt(zmq.LINGER, 1000)
TIMEOUT_MS = 10_000


def say(*parts):
    print(*parts, flush=True)


def show(frames):
    out = []
    for f in frames:
        if f[:1] in (b"\x00", b"\x01"):
            out.append("\\x%02x" % f[0] + f[1:].decode("utf-8", "replace"))
        else:
            out.append(f.decode("utf-8", "replace"))
    return "|".join(out)


def recv(sock):
    if not sock.poll(TIMEOUT_MS):
        say("timeout")
        sys.exit(3)
    return sock.recv_multipart()


def bind_random(sock):
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return "tcp://127.0.0.1:%d" % port


def wait_stdin_line():
    line = sys.stdin.readline()
    return line.strip()


if role == "sub-subscriber":
    # SUB connects to args[0]; subscribes to args[1]; on stdin "unsubscribe", unsubscribes;
    # exits when stdin closes.
    s = ctx.socket(zmq.SUB)
    s.connect(args[0])
    s.setsockopt(zmq.SUBSCRIBE, args[1].encode())
    say("ready")
    while True:
        line = wait_stdin_line()
        if line == "unsubscribe":
            s.setsockopt(zmq.UNSUBSCRIBE, args[1].encode())
            say("unsubscribed")
        elif not line:
            break
elif role == "xsub-peer":
    # XSUB connects to args[0]; sends \x01 + args[1] and one upstream message "hello|up";
    # prints the first 3 messages it receives.
    s = ctx.socket(zmq.XSUB)
    s.connect(args[0])
    s.send(b"\x01" + args[1].encode())
    s.send_multipart([b"hello", b"up"])
    say("ready")
    for _ in range(3):
        say("got", show(recv(s)))
elif role == "xpub-peer":
    # XPUB binds; prints what its subscriber sends (subscription, upstream message), then
    # publishes "skip.me" and args[0] messages until stdin closes.
    s = ctx.socket(zmq.XPUB)
    ep = bind_random(s)
    say("ready", ep)
    for _ in range(2):
        say("got", show(recv(s)))
    import select

    end = time.monotonic() + 10.0
    i = 0
    while time.monotonic() < end:
        s.send_multipart([b"skip.me", b"x"])
        s.send_multipart([args[0].encode(), str(i).encode()])
        i += 1
        r, _, _ = select.select([sys.stdin], [], [], 0.01)
        if r and not sys.stdin.readline():
            break
elif role == "forwarder":
    # A libzmq XSUB (publishers connect) and XPUB (subscribers connect) joined by zmq.proxy,
    # until the process is killed or stdin closes.
    xsub = ctx.socket(zmq.XSUB)
    xpub = ctx.socket(zmq.XPUB)
    up = bind_random(xsub)
    down = bind_random(xpub)
    say("ready", up, down)
    import threading

    def watch_stdin():
        sys.stdin.read()
        import os

        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    zmq.proxy(xsub, xpub)
elif role == "pub":
    # PUB connects to args[0]; publishes "c.skip", args[1] messages every 10 ms until stdin
    # closes.
    s = ctx.socket(zmq.PUB)
    s.connect(args[0])
    say("ready")
    import select

    end = time.monotonic() + 10.0
    i = 0
    while time.monotonic() < end:
        s.send_multipart([b"c.skip", b"x"])
        s.send_multipart([args[1].encode(), str(i).encode()])
        i += 1
        r, _, _ = select.select([sys.stdin], [], [], 0.01)
        if r and not sys.stdin.readline():
            break
elif role == "sub":
    # SUB connects to args[0], subscribes to args[1], prints args[2] messages.
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, args[1].encode())
    s.connect(args[0])
    say("ready")
    for _ in range(int(args[2])):
        say("got", show(recv(s)))
else:
    say("unknown role", role)
    sys.exit(2)
