"""The virtual store and the accuracy harnesses.

A simulated store day (people, phones with rotating addresses, radio with walls
and shadowing, door beams and floor tiles) written as *real* file formats: radiotap
and BLE pcaps, UART byte streams, plus the ground truth (:mod:`~heatmap.simulate.store_day`).
``footfall demo`` (:mod:`~heatmap.simulate.demo`) replays those captures through the
real node code, a real broker and the aggregator. The accuracy harnesses drive the
localizers on seeded scenarios (:mod:`~heatmap.simulate.accuracy_harness`) and on the
Kolakowski real-data recordings (:mod:`~heatmap.simulate.kolakowski_harness`).

This is the one part of :mod:`heatmap` that reaches into the node side beyond the
wire contract: it writes frames the node's decoders read and drives the node's replay.
"""
