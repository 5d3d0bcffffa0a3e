"""Shared ground of the node and the aggregator daemons.

The MQTT client wrapper (:mod:`~sensing.runtime.mqtt_link`), systemd's notify protocol
(:mod:`~sensing.runtime.systemd_notify`), progress reporting
(:mod:`~sensing.runtime.progress`), peak memory (:mod:`~sensing.runtime.process_memory`),
typed configuration files (:mod:`~sensing.runtime.typed_config`) and the version.
The aggregator may import these; none of them imports a node module.
The exception tree lives one layer lower, in :mod:`firmware_bridge.errors`.
"""
