"""Pure replicated data types for meshkp: no I/O, no asyncio, deterministic msgpack encodings.

Modules, one concept each (docs/crdt.md explains them):
- vclock: version vectors and their causal ordering (the key record's `vv`, the tombstone's);
- hlc: the hybrid logical clock that stamps tombstones;
- merkle, merkle_diff, merkle_wire: the anti-entropy tree over `id -> digest`, its diff
  protocol and that protocol's wire format;
- encoding, errors: deterministic msgpack and checked decoding, and the errors they raise.
"""
