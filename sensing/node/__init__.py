"""The ceiling node daemon (``footfall node``) and its parts.

Sources (:mod:`~sensing.node.sources`) → pipeline (:mod:`~sensing.node.pipeline`:
decode, filter, pseudonymize) → batches per stream (:mod:`~sensing.node.batcher`,
:mod:`~sensing.node.streams`) → the on-disk spool (:mod:`~sensing.node.spool`) → the
broker (:mod:`~sensing.node.delivery`), run by :mod:`~sensing.node.daemon` from
``node.toml`` (:mod:`~sensing.node.config`); its status, logs and clock check
(:mod:`~sensing.node.clock_gate`); ``footfall doctor`` (:mod:`~sensing.node.doctor`) and the replay
of capture files through the daemon (:mod:`~sensing.node.replay`).
"""
