"""The optional admin listener (--admin-listen): /cluster/* and /metrics off the HKP port.

Consul binds its HTTP API to loopback; a keyserver's HKP port faces the internet. With
`admin_listen` set, the node's one aiohttp runner gets a second site on that address (loopback
unless told otherwise), and this middleware answers 404 on the HKP port for the admin paths, so
the admin API, the cluster views and the metrics are reachable only where the operator put them.
Left on the HKP port: the health checks load balancers poll there (/pks/health,
/cluster/health), and HKP itself. The admin site serves every route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from meshkp.http.errors import text_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_PREFIXES = ("/cluster/", "/metrics")
# Probed by load balancers on the port they balance: they stay on the HKP listener.
PUBLIC_PATHS = frozenset({"/cluster/health"})


def is_admin_path(path: str) -> bool:
    return path.startswith(ADMIN_PREFIXES) and path not in PUBLIC_PATHS


class AdminSplit:
    """Which local addresses are the admin listener's (filled in once its site is bound)."""

    def __init__(self) -> None:
        self.admin_sockets: set[tuple[str, int]] = set()

    def on_admin_site(self, request: web.Request) -> bool:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return isinstance(sockname, tuple) and (sockname[0], sockname[1]) in self.admin_sockets

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_admin_path(request.path) and not self.on_admin_site(request):
            return text_error(404, f"{request.path} is served on this node's admin listener "
                                   "(admin_listen), not on the HKP port")
        return await handler(request)
