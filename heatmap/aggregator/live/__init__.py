"""The live aggregator: the store's rows, every few minutes, into durable k-anonymous aggregates.

The flow, one module per step:

* :mod:`.settings`: how often, with what lag, which windows (``[live]`` in store.toml);
* :mod:`.periods`: intervals, 15-minute slots, local hours and days;
* :mod:`.calibration_state`: the radio and motion model the intervals are located with,
  refitted hourly from the last hour's rows and kept in the database;
* :mod:`.interval_pass`: one interval's windows located (grid posterior + motion model,
  with a lead-in of the interval before it as the smoother's context);
* :mod:`.tracks_table`: the located windows (pseudonymous, retained like observations)
  and each interval's person-seconds per cell;
* :mod:`.sessions`: each pseudonym's windows cut into sessions: visitor, passerby,
  the visit's dwell, its zone stays and moves;
* :mod:`.period_figures` and :mod:`.k_guard`: a period's figures, suppressed where they
  come from fewer than k devices (k people for door counts);
* :mod:`.closing`: when an hour may close, and what a day takes from its hours;
* :mod:`.processor`: the loop that ties them together, crash-safe and idempotent.
"""
