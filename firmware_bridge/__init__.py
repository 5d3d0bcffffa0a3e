"""Talks to the door-beam and floor-tile microcontroller boards.

The boards speak the framed UART protocol of ``hardware/protocol.md``
(:mod:`firmware_bridge.protocol`); :mod:`firmware_bridge.decoder` turns a byte
stream into messages, resynchronising on garbage; :mod:`firmware_bridge.board_clock`
maps board ticks to node time; :mod:`firmware_bridge.board_stream` puts the two
together into :mod:`firmware_bridge.events` for one link, which
:mod:`firmware_bridge.serial_link` reads from a live port.
:mod:`firmware_bridge.gpio_beams` reads a beam pair on the node's GPIO with the
same :mod:`firmware_bridge.door_direction` logic as the firmware; the node
daemon batches the events into v1 MQTT payloads
(:func:`firmware_bridge.events.payload_items`, :class:`sensing.node.batcher.Batcher`).

Fakes and harnesses: :mod:`firmware_bridge.pty_board` (a board behind a pty),
:mod:`firmware_bridge.simavr_board` (the real firmware under simavr),
:mod:`firmware_bridge.door_scenario` (seeded people crossing the beams).
"""
