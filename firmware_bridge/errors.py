"""One exception tree for all of footfall: the node, the boards and the aggregator.

Every leaf also inherits the built-in exception it means, so callers may catch
either ``FootfallError`` or e.g. ``ValueError``.

It lives here, in the lowest of the three packages, because :mod:`firmware_bridge`
imports nothing from :mod:`sensing` or :mod:`heatmap` (the layers are checked by
import-linter): every package can reach this module without a cycle.
"""

from __future__ import annotations


class FootfallError(Exception):
    """Root of every error footfall raises on purpose."""


class ConfigError(FootfallError, ValueError):
    """A configuration or floor plan file is invalid; the message names the field."""


class PayloadError(FootfallError, ValueError):
    """An MQTT payload does not follow the v1 contract (bad JSON or schema)."""

    def __init__(self, message: str, reason: str = "schema") -> None:
        super().__init__(message)
        self.reason = reason
        """Short machine-readable reason used as a reject counter key."""


class TopicError(FootfallError, ValueError):
    """A topic string is not part of the v1 topic tree."""


class CaptureError(FootfallError, OSError):
    """A capture source (pcap file, radio, serial port) cannot be read."""


class BrokerError(FootfallError, RuntimeError):
    """The MQTT broker could not be started or reached."""


class AllDroppedError(FootfallError, RuntimeError):
    """A run took frames or events and dropped every one of them for a reason that
    drops everything (unsynchronized clock, stale or future key epoch): it did
    nothing, and must not look as if it succeeded."""
