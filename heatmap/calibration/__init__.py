"""Radio-model calibration: node-to-node links, the phone population, a beacon walk.

Four sources, each fitting what it can see (docs/architecture.md, "The spatial model"):

1. **Node-to-node links** (automatic, every analysis period). Every node also
   advertises on BLE (a non-connectable Eddystone-UID advert from a fixed
   *public* address), so every node hears the others. The nodes pseudonymize
   those frames like any other (the aggregator never holds the key, and a node
   does not need to know which addresses are its peers'), so the aggregator
   recognises them by what they are, not by address: a pseudonym whose flags
   say *beacon kind, public address*, heard all day by the other nodes, **never
   by one node** (a radio does not receive its own adverts), at levels that fit
   that node's position. Candidates are matched to nodes by a minimum-cost
   assignment (:func:`find_node_beacons`). The links then fit, by maximum
   likelihood with censoring (frames below the sensitivity are missed, and the
   count of misses is evidence): a path-loss exponent, a receive gain per node,
   a transmit power per node, an attenuation per wall and the shadowing σ
   (:func:`fit_links`).
2. **The phone population** (automatic): links cannot tell how loud phones
   are. Each localized pseudonym's transmit offset is estimated from its track;
   the median over devices sets the per-band phone level, their spread the
   offset prior (:func:`fit_population`).
3. **The people's motion** (automatic): how still people stand — the dwelling
   mode's diffusion — by the marginal likelihood of a sample of long tracks
   (:func:`calibrate_motion`).
4. **A beacon walk at known points** (``footfall calibrate --walk``): a phone or
   tag carried to marked spots refines per-node levels and exponents, walls,
   σ, and learns a smooth per-node correction map (:func:`fit_walk`,
   :func:`residual_map`).

All fits are penalized maximum likelihood with priors at the current model, so
few data move the model little.
"""

from heatmap.calibration.fit import FitReport
from heatmap.calibration.links import (
    LinkStats,
    find_node_beacons,
    fit_links,
    is_node_beacon_flags,
    link_stats,
)
from heatmap.calibration.motion_fit import calibrate_motion
from heatmap.calibration.population import (
    StoreCalibration,
    calibrate_links,
    calibrate_phones,
    calibrate_population,
    calibrate_store,
    fit_population,
)
from heatmap.calibration.walk import (
    WalkPoint,
    find_walk_pid,
    fit_walk,
    load_walk,
    parse_time_ms,
    residual_map,
    walk_observations,
)

__all__ = [
    "FitReport",
    "LinkStats",
    "StoreCalibration",
    "WalkPoint",
    "calibrate_links",
    "calibrate_motion",
    "calibrate_phones",
    "calibrate_population",
    "calibrate_store",
    "find_node_beacons",
    "find_walk_pid",
    "fit_links",
    "fit_population",
    "fit_walk",
    "is_node_beacon_flags",
    "link_stats",
    "load_walk",
    "parse_time_ms",
    "residual_map",
    "walk_observations",
]
