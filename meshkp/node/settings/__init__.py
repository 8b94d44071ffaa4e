"""The settings of `meshkp serve` in layers, resolved into a NodeConfig.

Defaults, then the config file, then `MESHKP_*` variables, then the flags the operator typed.
"""
