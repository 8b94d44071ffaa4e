"""`MESHKP_*` environment variables: one per config key, for containers.

The rule: MESHKP_ + the key's path, dots as underscores, upper case. `[hkp] port` is
MESHKP_HKP_PORT, `[cluster] enabled` is MESHKP_CLUSTER_ENABLED, `[cluster.discovery] peers` is
MESHKP_CLUSTER_DISCOVERY_PEERS (a comma-separated list). Values are written as in the file,
without TOML quotes: MESHKP_CLUSTER_REPLICATION_SYNC_INTERVAL=30s.

A variable under a config section's prefix (MESHKP_HKP_, MESHKP_CLUSTER_, ...) that names no
key is an error, because a typo there would otherwise be ignored silently. Other MESHKP_*
names (MESHKP_ADMIN_TOKEN of the client commands, MESHKP_CONFIG) are not config keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from meshkp.node.settings.keys import ENV_PREFIX, KEYS, KEYS_BY_ENV, SECTIONS
from meshkp.node.settings.layers import ENV, Layer, Origin, Problem, Setting

# MESHKP_HKP_, MESHKP_CLUSTER_, ...: the prefixes under which every name must be a key.
SECTION_PREFIXES = tuple(sorted({ENV_PREFIX + s.split(".")[0].upper() + "_" for s in SECTIONS}))


def read_environment(environ: Mapping[str, str]) -> tuple[Layer, list[Problem]]:
    """The settings that `MESHKP_*` variables of `environ` give, and the problems found."""
    layer: Layer = {}
    problems: list[Problem] = []
    for name in sorted(environ):
        if not name.startswith(SECTION_PREFIXES):
            continue
        key = KEYS_BY_ENV.get(name)
        origin = Origin(ENV, name, name)
        if key is None:
            close = difflib.get_close_matches(name, [k.env for k in KEYS], n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]}?" if close else " (see docs/configuration.md)"
            problems.append(Problem(f"names no config key{hint}", origin))
            continue
        try:
            parsed = key.kind.from_text(environ[name])
        except ValueError as exc:
            problems.append(Problem(f"{exc} ({key.label} of the config file)", origin))
            continue
        for target, part in key.assign(parsed).items():
            layer[target] = Setting(part, origin)
    return layer, problems
