"""footfall store aggregator: everything spatial.

- :mod:`heatmap.aggregator` — the service: MQTT ingest into the store database,
  migrations, retention, visitor/passer-by classes, hourly aggregates, status, the
  private broker;
- :mod:`heatmap.spatial` — the store's geometry and physics: floor plan, walkable grid,
  radio model, motion model, Cramér–Rao bound, node placement;
- :mod:`heatmap.localizers` — RSSI → position: ours (grid posterior) and the baselines;
- :mod:`heatmap.calibration` — the radio and motion models fitted to a store's own data;
- :mod:`heatmap.report` — analytics, flows, pictures and the store report;
- :mod:`heatmap.simulate` — the virtual store, the accuracy harness and ``footfall demo``.

From the node side it imports only :mod:`sensing.wire`, :mod:`sensing.runtime` and
:mod:`firmware_bridge.errors`; the simulator is the exception (it writes real
captures and drives the real node code). Heavy dependencies (numpy, scipy,
matplotlib) live here only.
"""
