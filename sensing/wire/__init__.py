"""The v1 wire contract between nodes, aggregator and BI.

The topic tree (:mod:`~sensing.wire.topics`), the payloads with one JSON Schema each
(:mod:`~sensing.wire.payloads`, ``schemas/``), the bits of an observation
(:mod:`~sensing.wire.observation`) and the generated topic reference
(:mod:`~sensing.wire.topic_reference`). This is the only part of the node side the
aggregator imports (besides :mod:`sensing.runtime`).
"""
