"""How the API process is served: the uvicorn options that `python cli.py serve` (and so `make run`)
and the benchmarks' server processes share. Imports nothing of the app, so a benchmark
can read it before its settings are in place."""

# A WebSocket message larger than this closes the socket (1009) before it is buffered; uvicorn's
# default, 16 MiB, would be read whole before the app's own check. The chat protocol's largest
# frame is 4096 characters (routers/chat_socket.py, MAX_FRAME_CHARS): 16 KiB at most in UTF-8.
WS_MAX_BYTES = 64 * 1024

# How long an idle kept-alive connection stays open. Longer than any client's or proxy's own idle
# timeout (httpx's pool 5 s, nginx's upstream keepalive_timeout 60 s, cloud load balancers 60 s):
# the side that closes an idle connection must be the client, or a request it sends at the moment
# the server closes gets no answer (seen in a soak: RemoteProtocolError with both at 5 s, uvicorn's
# default). A proxy in front must close its upstream connections first (docs/operations.md).
KEEP_ALIVE_SECONDS = 75

# The command-line flags of `python -m uvicorn main:app` that `cli.py serve` sets too. No proxy
# headers: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 and rewrite the client
# address before the app sees it; the app resolves it itself (edge.client_ip, TRUSTED_PROXIES).
UVICORN_FLAGS = [
    "--no-proxy-headers",
    "--ws-max-size",
    str(WS_MAX_BYTES),
    "--timeout-keep-alive",
    str(KEEP_ALIVE_SECONDS),
]
