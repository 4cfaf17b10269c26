"""The bottom layer: configuration, errors, the model store and the types every layer
shares. It imports no Ray Serve and nothing above it (tests/unit/test_layers.py checks)."""
