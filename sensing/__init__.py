"""footfall node side: what runs on a ceiling node, and the ground both daemons share.

Sub-packages, in the order a frame flows through them:

- :mod:`sensing.capture` — radios and capture files → decoded frames (raw addresses,
  node memory only), the channel plan, the infrastructure filter;
- :mod:`sensing.privacy` — keyed rotating pseudonyms (the ratchet) and the opt-out list;
- :mod:`sensing.node` — the node daemon: sources, pipeline, batches, spool, delivery,
  status, logs, clock, ``doctor`` and replay;
- :mod:`sensing.wire` — the v1 MQTT contract: topics, payloads, their JSON Schemas and
  the observation fields; the one part of this package the aggregator imports;
- :mod:`sensing.provision` — a store's PKI and broker ACL;
- :mod:`sensing.runtime` — what both daemons use: the MQTT client, systemd notify,
  progress, process memory, typed config files, the version;
- :mod:`sensing.cli` — the ``footfall`` command, one module per command group.

Every install has this package (a ceiling node runs nothing else); it never imports
the aggregator (:mod:`heatmap`) except lazily from the command table.
"""

from sensing.runtime.version import __version__

__all__ = ["__version__"]
