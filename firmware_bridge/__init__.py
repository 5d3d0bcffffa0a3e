"""Talks to the door-beam and floor-tile microcontroller boards.

The boards speak the framed UART protocol of ``hardware/protocol.md``
(:mod:`firmware_bridge.protocol`); :mod:`firmware_bridge.decoder` turns a byte
stream into messages, resynchronising on garbage; :mod:`firmware_bridge.board_clock`
maps board ticks to node time.
"""
