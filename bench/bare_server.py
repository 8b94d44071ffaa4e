"""The baseline of the read benchmarks: a bare aiohttp handler returning a constant body.

It answers every GET with the same bytes and content type that meshkp returned for the
benchmarked request, so both servers send the same response size over the same stack. Every
POST (the upload benchmarks' baseline) reads the whole body and answers a short text, as
meshkp's POST /pks/add does.
Run: python -m bench.bare_server --port P --body FILE --content-type TYPE
"""

from __future__ import annotations

from pathlib import Path

import click
from aiohttp import web


def make_app(body: bytes, content_type: str) -> web.Application:
    async def constant(_request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def read_and_ack(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="1 added, 0 updated, 0 unchanged, 0 rejected\n")

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_get("/{tail:.*}", constant)
    app.router.add_post("/{tail:.*}", read_and_ack)
    return app


@click.command()
@click.option("--port", type=int, required=True)
@click.option("--body", "body_path", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--content-type", default="application/octet-stream")
def main(port: int, body_path: Path, content_type: str) -> None:
    """Serve BODY on 127.0.0.1:PORT for every GET; read and acknowledge every POST."""
    app = make_app(body_path.read_bytes(), content_type)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
