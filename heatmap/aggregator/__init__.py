"""The store aggregator service (``footfall aggregator``).

MQTT → schema check → SQLite (:mod:`~heatmap.aggregator.ingest`,
:mod:`~heatmap.aggregator.store_db`, :mod:`~heatmap.aggregator.db_migrations`), the
class of each pseudonym (:mod:`~heatmap.aggregator.pid_class`), hourly aggregates and
retention (:mod:`~heatmap.aggregator.hour_aggregates`,
:mod:`~heatmap.aggregator.retention`), reading a period back
(:mod:`~heatmap.aggregator.obs_reader`), the daemon, its config and status, BI
publishing and the private loopback broker.
"""
