"""The benchmark's floor: a bare forwarder, run as its own process like the switch.

`python -m lab.forwarder --target URL` relays each POST body to URL and the answer back,
with no parsing, no signature and no journal: the most one process can move over the hops a
switch uses, on the switch's own HTTP stack (its hot route on protocol/hotroute.py's lean
server, its forwards on protocol/hotclient.py's lean client), so that the ratio to it
measures the switch's work and not a difference of stacks. It prints "forwarder listening
on URL" when ready.
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web
from yarl import URL

from protocol.hotclient import LeanClient
from protocol.hotroute import HOT_ROUTE, HotRequest, HotRoute
from protocol.runtime import bind, ready_until_stopped, run_event_loop, serve
from protocol.transport import SERVER_LIMITS, UNAUTHENTICATED_SERVER_LIMITS

FORWARD_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 1_024  # to the creditor: more than the bench ever has in flight
XML = {"Content-Type": "application/xml"}


async def run(target_url: str) -> None:
    client = LeanClient(MAX_CONNECTIONS)
    target = URL(target_url)

    async def forward(request: web.Request | HotRequest) -> web.Response:
        reply = await client.post(target, await request.read(), XML, FORWARD_TIMEOUT_S)
        return web.Response(status=reply.status, body=reply.body,
                            content_type="application/xml")

    app = web.Application()
    app[SERVER_LIMITS] = UNAUTHENTICATED_SERVER_LIMITS  # it checks no signature
    app.router.add_post("/v1/messages", forward)
    app[HOT_ROUTE] = HotRoute("/v1/messages", forward)  # as the switch's (switch/app.py)
    bound = bind()
    runner = await serve(app, bound)
    try:
        await ready_until_stopped(f"forwarder listening on {bound.base_url}/v1/messages")
    finally:
        await runner.cleanup()
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.forwarder", description=__doc__)
    parser.add_argument("--target", required=True, help="URL every POST is relayed to")
    run_event_loop(run(parser.parse_args(argv).target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
