"""What the privacy kit reads of a store: its ``store.toml`` (with ``[privacy]``) and plan.

The kit works from the actual configuration, never from a copy of it: the notice
states the store's own k, retention and mode; the audit checks the database and the
key the file names; the inventory lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from heatmap.aggregator import config as aggregator_config
from heatmap.aggregator.config import AggregatorConfig
from heatmap.aggregator.config_model import PrivacySection, StoreFile
from heatmap.spatial.floorplan import FloorPlan, load, load_default
from sensing.runtime.typed_config import read_toml, validate


@dataclass(frozen=True)
class StoreSetup:
    path: Path
    """the ``store.toml`` read"""
    config: AggregatorConfig
    privacy: PrivacySection
    plan: FloorPlan
    """the store's floor plan (the bundled one when ``store.toml`` names none)"""
    plan_is_default: bool

    @property
    def retention_hours(self) -> float:
        return self.config.retention.retention_hours

    @property
    def name(self) -> str:
        return self.plan.name if not self.plan_is_default else self.config.store


def load_store(path: str | Path) -> StoreSetup:
    """``store.toml`` at ``path``, validated (ConfigError naming the key on a problem)."""
    p = Path(path)
    cfg = aggregator_config.load(p)
    model = validate(read_toml(p, "config file"), StoreFile, str(p))
    plan = load(cfg.floor_plan) if cfg.floor_plan else load_default()
    return StoreSetup(p, cfg, model.privacy, plan, cfg.floor_plan is None)
