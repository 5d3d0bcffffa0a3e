"""The BLE adverts of a simulated day as the nodes hear them: the people, their phones,
every advert sent, where it was sent from and its RSSI at each node.

One sequence of draws from the day's generator (people, phones, adverts, radio), the
order :func:`heatmap.simulate.store_day.simulate` draws them in, so that every harness
built on it (the accuracy harness, the re-layout weeks, the RF-count bench) sees the
same day for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from heatmap.simulate import radio
from heatmap.simulate.people import Person, populate
from heatmap.simulate.phones import Emissions, Phone, ble_events, make_phones
from heatmap.simulate.scenario import Scenario
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid

__all__ = ["HeardBle", "heard_ble"]


@dataclass(frozen=True)
class HeardBle:
    """A simulated day's adverts (one row per advert sent)."""

    people: list[Person]
    phones: list[Phone]
    em: Emissions
    """every advert sent: time (s from the start), phone, address"""
    pos: NDArray[np.float64]
    """(adverts, 2) where each was sent from, m"""
    rssi: NDArray[np.float64]
    """(adverts, nodes) received level, dBm; NaN where the node did not hear it"""
    addr_code: NDArray[np.intp]
    """each advert's address as a small int (equal addresses, equal codes)"""


def heard_ble(plan: FloorPlan, sc: Scenario, rng: np.random.Generator) -> HeardBle:
    """Draw the day's people, phones and adverts from ``rng`` and receive them."""
    people = populate(plan, WalkableGrid.build(plan, cell_m=0.5), sc, rng)
    phone_list = make_phones(people, sc, rng)
    offsets = np.array([ph.offset_db for ph in phone_list])
    em = ble_events(phone_list, people, sc, rng)
    pos = np.zeros((len(em.t), 2))
    for i, ph in enumerate(phone_list):
        rows = np.flatnonzero(em.phone == i)
        if len(rows):
            pos[rows] = people[ph.person].position(em.t[rows])
    rssi = radio.received(pos, offsets[em.phone], sc.radio.p0_ble_dbm, plan, sc.radio, rng)
    _, code = np.unique(np.array(em.addr, dtype=object).astype("S6"), return_inverse=True)
    return HeardBle(people, phone_list, em, pos, rssi, code)
