"""Every bound a client or peer can push against, next to what it protects against.

Each field is a config value (see docs/configuration.md); `Limits()` carries the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from meshkp.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Limits:
    # POST /pks/add body, in bytes. Without it a client could make us buffer an unbounded body.
    # 8 MiB fits the largest real keys (a few MB with tens of thousands of signatures).
    upload_bytes: int = 8 * 1024 * 1024
    # Keys (and stray signatures) in one POST /pks/add. Each costs objects and a reply line
    # of ~150 bytes, while a junk "key" can be a 2-byte packet: without it an 8 MiB upload
    # makes a ~600 MB reply and GBs of memory. gpg sends one key per upload; a keyring of
    # thousands of keys goes through `meshkp load`.
    upload_keys: int = 10_000
    # One certificate after normalisation. Bounds what one key costs every node forever
    # (storage, replication, op=get). Keys over it are rejected, not truncated.
    key_bytes: int = 4 * 1024 * 1024
    # One packet. A hostile length header could otherwise claim gigabytes; photo IDs are the
    # largest honest packets (tens of KB).
    packet_bytes: int = 1024 * 1024
    # Signatures kept per component (user ID, subkey, primary). Above it we keep the N with the
    # smallest SHA-256 of their bytes: a total order, so the cap commutes with merge (DESIGN.md)
    # and two nodes with the same cap never fight. Defends against certificate flooding
    # (CVE-2019-13050 style signature spam).
    sigs_per_component: int = 1000
    # User ID packet length. Real ones are < 200 bytes; spam UIDs carry megabytes of text.
    uid_bytes: int = 2048
    # The `search` variable of /pks/lookup, in characters. Bounds keyword parsing and scans.
    search_chars: int = 256
    # Results of a free-text search. gpg shows them all, so an unbounded "a" query would
    # stream the whole index.
    search_results: int = 100
    # Keywords ANDed in one free-text search. Each costs one index scan of up to
    # `keyword_scan` keys; beyond a handful the result is almost always empty anyway, and a
    # hostile query could otherwise ask for a hundred scans (search_chars allows ~128 words).
    search_keywords: int = 8
    # Candidate keys read per keyword when several keywords are ANDed; the intersection is
    # taken over at most this many keys per word (in fingerprint order), so a search for two
    # very common words can miss keys beyond it. Bounds one search to search_keywords x this
    # index entries; at least search_results and get_results so a reply can still be filled.
    keyword_scan: int = 10_000
    # Keys in one op=get reply (several matches give one keyring).
    get_results: int = 100
    # Bytes of keys (binary, before armor) in one op=get or index reply; the keys after the
    # one that crosses it are left out (the first key is always served). Without it one
    # search for a word shared by get_results keys of key_bytes each builds a ~500 MB reply
    # (and the HTML or mr text of as much) per request.
    reply_bytes: int = 16 * 1024 * 1024
    # Keyword index terms per key (words of user IDs, e-mails, local parts, domains); the
    # primary user ID's come first. Without it one key with hundreds of long user IDs writes
    # thousands of index entries on every node. Real keys need < 150 (debian-keyring max).
    keywords_per_key: int = 256
    # Self-signatures of one uploaded key that fail verification before the key is refused.
    # Each costs a public-key operation (~0.2 ms for RSA-4096): without it an 8 MiB upload of
    # forged "self-signatures" buys seconds of CPU. Honest keys have none or a few.
    bad_self_signatures: int = 64
    # Candidate components hashed per key while looking for the one a misfiled self-signature
    # binds (GnuPG's "signatures reordered", meshkp/openpgp/relocate.py). Each is one hash of
    # the primary key and the candidate, a few µs and no public-key operation (those count
    # against bad_self_signatures); without it forged "self-signatures" filed among thousands
    # of tiny user IDs would cost strays x components hashes. Real keys need a few dozen
    # (rtt-140.asc: 25). When it runs out the remaining misfiled signatures are just dropped.
    relocation_hashes: int = 4096
    # Seconds to receive one POST /pks/add body. A client that stalls an
    # upload 1 KiB before its end pins its buffered bytes: 48 such 8 MiB uploads took a node
    # from 62 to 452 MiB RSS, all still open after 30 s (red-team finding 4). An 8 MiB key
    # arrives in 20 s at 3.5 Mbit/s; real keys are KBs.
    upload_read_seconds: int = 20
    # Bytes of /pks/add bodies being read at once, node-wide (each upload reserves its
    # Content-Length, or upload_bytes when it sends none). Bounds the memory a flood of
    # stalled uploads pins; more are refused with 503 until the reads finish or time out.
    uploads_buffered_bytes: int = 64 * 1024 * 1024
    # The same bound per client address, so that one client cannot take every byte of it and
    # other clients still upload while it stalls. Behind a reverse proxy, pass --trusted-proxy
    # so that each forwarded client has its own (else they all share the proxy's). Both
    # budgets are at least upload_bytes in effect, so that the largest upload can be read.
    uploads_buffered_client_bytes: int = 16 * 1024 * 1024
    # One keyword, in UTF-8 bytes; longer words are cut (queries are cut the same way, so they
    # still match). Bounds index key size.
    keyword_bytes: int = 64
    # Milliseconds of CPU one upload may spend verifying self-signatures; the keys after the
    # one that crosses it are refused (event=upload_cpu_exhausted), so one 8 MiB upload of
    # hostile keys costs at most this, not minutes (red-team finding 5: 36 keys with ~3070-bit
    # RSA exponents and 65 bad self-signatures each took 15 s). Honest uploads of one key take
    # a few ms; debian-keyring's largest keys ~0.3 s.
    upload_cpu_ms: int = 5000
    # --- Rate limits per client (meshkp/http/ratelimit.py), one token bucket per kind ---
    # A client is an IPv4 address or an IPv6 /64 (meshkp/http/clientaddr.py); the trusted
    # proxies of the node are exempt. Each bucket holds `burst` tokens and refills
    # `per_minute`; an empty one answers 429 with Retry-After. The defaults leave gpg's
    # --refresh-keys of a few hundred keys and a busy NAT'd office untouched, while one
    # client can no longer take a node's whole op=get capacity (~1,500 req/s per core).
    # op=get, one token per request.
    rate_get_per_minute: int = 1200
    rate_get_burst: int = 200
    # op=index and op=vindex: a search scans index terms, so fewer of them. A short (fewer
    # than 3 characters in its longest word) or wildcard-like (*, ?, %) search costs
    # `rate_search_costly` tokens: it matches the most keys and builds the largest replies.
    rate_search_per_minute: int = 300
    rate_search_burst: int = 60
    rate_search_costly: int = 5
    # POST /pks/add: each costs parsing, verification and replication to every node. Also
    # charged one more token per `upload_cpu_ms`/5 of CPU the upload's verification took, so
    # hostile keys drain a client's uploads by their cost rather than their count.
    rate_upload_per_minute: int = 30
    rate_upload_burst: int = 20
    # Temporary bans (HAProxy's stick-table rules, as Hockeypuck's operators run them): more
    # than `ban_requests` requests in `ban_requests_seconds`, whatever their answer, or more
    # than `ban_errors` client errors (4xx other than 404: malformed requests, refused
    # uploads, wrong admin tokens, ignored 429s) in `ban_errors_seconds`, ban the client for
    # `ban_seconds`: each of its requests then gets 429 at once, before any other work.
    ban_requests: int = 600
    ban_requests_seconds: int = 10
    ban_errors: int = 20
    ban_errors_seconds: int = 300
    ban_seconds: int = 600
    # Clients whose buckets are remembered; the least recently seen is forgotten first (it
    # starts again with full buckets; banned ones are skipped a few times). ~600 bytes each
    # (measured: 20,000 took 12 MiB of RSS): 50,000 is ~30 MB at worst, and a client cycling
    # addresses cannot grow it further. A pool node sees fewer clients in a ban's 10 minutes.
    rate_clients: int = 50_000
    # --- Connections of the HKP listener (meshkp/http/connguard.py) ---
    # Open connections in all. Each costs a file descriptor and ~10 KB of buffers; beyond it
    # new connections get 503 and are closed, so the node keeps fds for its store and peers
    # (systemd's LimitNOFILE in deploy/ is 65536; the Debian default soft limit is 1024).
    # Above 3/4 of it, answers close their connection instead of keeping it alive.
    http_connections: int = 768
    # Open connections per client (IPv4 address or IPv6 /64; trusted proxies exempt). gpg
    # opens one at a time; a slowloris client opening hundreds only gets this many, so it
    # cannot fill `http_connections` for everyone else.
    http_client_connections: int = 32
    # Requests one keep-alive connection carries; the answer to the last one closes it
    # (nginx's keepalive_requests, whose default is the same). The client reconnects, which
    # costs it one handshake per this many requests, and the node gets back what a connection
    # holds beyond its slot: the client is weighed again at accept (its connection cap, a ban
    # from meanwhile), a load balancer or DNS round robin can move it to another node, and
    # no connection's buffers and parser state live for ever.
    http_connection_requests: int = 1000

    def validate(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"limit {name} must be a positive integer, got {value!r}")
        if self.packet_bytes > self.key_bytes:
            raise ConfigError("limit packet_bytes must not exceed key_bytes")
        if self.key_bytes > self.upload_bytes:
            raise ConfigError("limit key_bytes must not exceed upload_bytes")
        if self.keyword_scan < max(self.search_results, self.get_results):
            raise ConfigError(
                "limit keyword_scan must be at least search_results and get_results, or a "
                "search of several keywords could never fill a reply"
            )

    def with_overrides(self, assignments: Iterable[str]) -> Limits:
        """A copy with NAME=VALUE assignments applied (the --limit option); ConfigError if bad."""
        changes: dict[str, int] = {}
        for assignment in assignments:
            name, sep, value = assignment.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in self.__slots__:
                known = ", ".join(self.__slots__)
                raise ConfigError(f"--limit takes NAME=VALUE with NAME one of: {known}; got {assignment!r}")
            try:
                changes[name] = int(value.replace("_", ""))
            except ValueError:
                raise ConfigError(f"limit {name} must be an integer, got {value!r}") from None
        updated = replace(self, **changes)
        updated.validate()
        return updated
