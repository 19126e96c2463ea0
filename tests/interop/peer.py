"""A libzmq peer (through pyzmq) for zocket's interop tests.

usage: peer.py ROLE ENDPOINT [ARGS...]
Prints one line per event on stdout ("ready", "got <frames joined by |>", ...), exits 0 when
its script is done, non-zero on a timeout. Every wait is bounded.
"""
import sys
import time

import zmq

role, endpoint, *args = sys.argv[1:]
ctx = zmq.Context()
TIMEOUT_MS = 10_000


def say(*parts):
    print(*parts, flush=True)


def show(frames):
    return "|".join(f.decode("utf-8", "replace") for f in frames)


def recv(sock):
    if not sock.poll(TIMEOUT_MS):
        say("timeout")
        sys.exit(3)
    return sock.recv_multipart()


def deadline(seconds=10.0):
    return time.monotonic() + seconds


if role == "sub":  # connect or bind per args[0], subscribe to args[1], print N messages
    mode, topic, count = args[0], args[1], int(args[2])
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, topic.encode())
    getattr(s, mode)(endpoint)
    say("ready")
    for _ in range(count):
        say("got", show(recv(s)))
elif role == "pub":  # bind; publish args[0] topic messages every 10 ms until stdin closes
    s = ctx.socket(zmq.PUB)
    s.bind(endpoint)
    say("ready")
    import select
    end = deadline()
    i = 0
    while time.monotonic() < end:
        s.send_multipart([b"skip.me", b"x"])
        s.send_multipart([args[0].encode(), str(i).encode()])
        i += 1
        r, _, _ = select.select([sys.stdin], [], [], 0.01)
        if r and not sys.stdin.readline():
            break
elif role == "rep":  # bind; answer N requests with "re: <request>"
    s = ctx.socket(zmq.REP)
    s.bind(endpoint)
    say("ready")
    for _ in range(int(args[0])):
        frames = recv(s)
        s.send_multipart([b"re: " + b"|".join(frames)])
elif role == "rep-heartbeat":  # like rep, with libzmq heartbeats on (ZMQ_HEARTBEAT_IVL)
    s = ctx.socket(zmq.REP)
    s.setsockopt(zmq.HEARTBEAT_IVL, 50)
    s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 300)
    s.setsockopt(zmq.HEARTBEAT_TTL, 600)
    s.bind(endpoint)
    say("ready")
    for _ in range(int(args[0])):
        frames = recv(s)
        s.send_multipart([b"re: " + b"|".join(frames)])
elif role == "pair":  # bind or connect per args[0]; answer one message with "pong:" + it
    s = ctx.socket(zmq.PAIR)
    getattr(s, args[0])(endpoint)
    say("ready")
    frames = recv(s)
    say("got", show(frames))
    s.send_multipart([b"pong:" + frames[0]] + frames[1:])
    time.sleep(0.5)  # let the answer leave before the context ends
elif role == "req":  # connect; send args[0], print the reply
    s = ctx.socket(zmq.REQ)
    s.connect(endpoint)
    s.send_multipart([a.encode() for a in args])
    say("got", show(recv(s)))
elif role == "dealer":  # connect with identity args[0]; send "hello", print the answer
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.IDENTITY, args[0].encode())
    s.connect(endpoint)
    s.send_multipart([b"hello"])
    say("got", show(recv(s)))
elif role == "router":  # bind; answer one message, addressed back by identity
    s = ctx.socket(zmq.ROUTER)
    s.bind(endpoint)
    say("ready")
    frames = recv(s)
    say("from", frames[0].decode("utf-8", "replace"))
    s.send_multipart([frames[0], b"answer to " + frames[-1]])
    time.sleep(0.5)  # let the answer leave before the context ends
elif role == "sub-unsubscribe":  # connect; subscribe a. and b.; print one of each; drop b.; print N more
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, b"a.")
    s.setsockopt(zmq.SUBSCRIBE, b"b.")
    s.connect(endpoint)
    say("ready")
    seen = set()
    while seen != {b"a.", b"b."}:
        frames = recv(s)
        seen.add(frames[0][:2])
    s.setsockopt(zmq.UNSUBSCRIBE, b"b.")
    say("unsubscribed")
    # Messages already in flight may still be b.; after the first a. following our
    # cancel reached the publisher, none may be.
    for _ in range(int(args[0])):
        say("got", show(recv(s)))
elif role == "router-envelope":  # bind; answer N requests, keeping their envelope
    s = ctx.socket(zmq.ROUTER)
    s.bind(endpoint)
    say("ready")
    for _ in range(int(args[0])):
        frames = recv(s)
        envelope, body = frames[:-1], frames[-1]
        s.send_multipart(envelope + [b"routed " + body])
    time.sleep(0.5)
elif role == "dealer-to-rep":  # connect a DEALER; send an envelope-delimited request
    s = ctx.socket(zmq.DEALER)
    s.connect(endpoint)
    s.send_multipart([b"", b"from dealer"])
    say("got", show(recv(s)))
elif role == "push":  # connect; push N messages
    s = ctx.socket(zmq.PUSH)
    s.connect(endpoint)
    for i in range(int(args[0])):
        s.send_multipart([b"job", str(i).encode()])
    say("sent")
    s.close(linger=5000)
elif role == "pull":  # bind; print N messages
    s = ctx.socket(zmq.PULL)
    s.bind(endpoint)
    say("ready")
    for _ in range(int(args[0])):
        say("got", show(recv(s)))
else:
    say("unknown role", role)
    sys.exit(2)
ctx.destroy(linger=1000)
