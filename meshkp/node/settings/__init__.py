"""The settings of `meshkp serve` in layers (defaults, config file, environment, flags), resolved into a NodeConfig."""
