"""The store in space: floor plan (TOML, validated), geometry, the walkable grid,
the radio model (log-distance path loss with walls), the walking motion model, the
Cramér–Rao bound of a node layout and where to put nodes. Pure functions of their
inputs; no I/O beyond reading the floor plan.
"""
