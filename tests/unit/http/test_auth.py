"""Admin bearer token check: 401 for every wrong, missing or undecodable credential, never 500."""

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request

from meshkp.http.auth import TOKEN_FILE, load_or_create_token, require_admin

TOKEN = "t" * 32


def request(authorization: str | None) -> web.Request:
    headers = {} if authorization is None else {"Authorization": authorization}
    return make_mocked_request("POST", "/cluster/join", headers=headers)


def test_the_right_token_passes() -> None:
    require_admin(request(f"Bearer {TOKEN}"), TOKEN)
    require_admin(request(f"bearer  {TOKEN} "), TOKEN)


@pytest.mark.parametrize("authorization", [
    None, "", TOKEN, f"Basic {TOKEN}", "Bearer " + "x" * 32, f"Bearer {TOKEN}x", "Bearer ",
    "Bearer ü" + TOKEN,
])
def test_anything_else_is_401(authorization: str | None) -> None:
    with pytest.raises(web.HTTPUnauthorized):
        require_admin(request(authorization), TOKEN)


@pytest.mark.parametrize("space", ["\u00a0", "\u3000", "\u2028", "\u2003"])
def test_a_unicode_space_around_the_token_is_401(space: str) -> None:
    # Red-team finding 9: str.strip() removed these, so "token<U+00A0>" was accepted.
    for token in (TOKEN + space, space + TOKEN):
        with pytest.raises(web.HTTPUnauthorized):
            require_admin(request(f"Bearer {token}"), TOKEN)


@pytest.mark.parametrize("raw_token", [b"\xff\xfe", b"\xff" * 32, b"\xc3" + TOKEN.encode()])
async def test_a_token_that_is_not_utf8_is_401_not_500(raw_token: bytes) -> None:
    # aiohttp decodes header bytes as UTF-8 with surrogateescape, so such a token arrives with
    # lone surrogates; encoding it strictly raised UnicodeEncodeError (a 500 with a traceback).
    async def handler(req: web.Request) -> web.Response:
        require_admin(req, TOKEN)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/cluster/join", handler)
    server = TestServer(app)
    await server.start_server()
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"POST /cluster/join HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                     b"Authorization: Bearer " + raw_token + b"\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(10):
            status_line = (await reader.readline()).decode()
        writer.close()
        assert status_line.split()[1] == "401"
    finally:
        await server.close()


@pytest.mark.parametrize("space", ["\u00a0", "\u3000", "\u2028", "\u2003"])
def test_a_configured_token_keeps_unicode_spaces_as_part_of_it(tmp_path: Path, space: str) -> None:
    token = "t" * 32
    assert load_or_create_token(tmp_path, space + token + space + "\n") == space + token + space
    (tmp_path / TOKEN_FILE).write_text(token + "\n")
    (tmp_path / TOKEN_FILE).chmod(0o600)
    assert load_or_create_token(tmp_path) == token  # the file's newline is not part of it
