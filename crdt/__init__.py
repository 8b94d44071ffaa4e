"""Pure replicated data types for meshkp: no I/O, no asyncio, deterministic msgpack encodings.

Modules, one concept each (docs/crdt.md explains them):
- vclock: version vectors and their causal ordering;
- dots: dots and the dot-based causal context the OR-Set and remove-wins set use;
- hlc: the hybrid logical clock that stamps LWW writes;
- gset, orset, rwset, lww: the set and register types;
- merkle, merkle_diff: the anti-entropy tree over `id -> digest` and its diff protocol.
"""
