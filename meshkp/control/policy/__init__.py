"""The replicated policy: typed commands, the pure apply() and the state with its audit trail."""
