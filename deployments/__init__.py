"""The layers below the front end, one folder each: core/ (layer 1), engines/ (layer 2) and
replicas/ (layer 3). This folder holds no module of its own (docs/architecture.md)."""
