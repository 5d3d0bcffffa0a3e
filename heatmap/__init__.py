"""footfall store aggregator: everything spatial.

Floor plan, radio model, localization, simulation, analytics, rendering and the
aggregator daemon. Heavy dependencies (numpy, scipy, matplotlib) live here only.
"""
