"""``footfall doctor``: is this node fit to run? One line per check, each saying
what is wrong and how to fix it; the exit code says fit (0) or not (1).

Checks, in the order an installer meets problems: the key file, the clock, the
spool's disk, the Wi-Fi radio (monitor mode, channel plan), the BLE adapter, the
sensor boards answering on their serial ports, GPIO beams, the broker's TLS with
the node's own certificate, and the broker's ACL (can the node publish its own
topics, and only those). Hardware and the system are read through small seams
(a command runner, the sysfs roots, a clock probe) that tests replace.

:mod:`~sensing.node.doctor.runner` runs the checks (:class:`~sensing.node.doctor.runner.Doctor`);
each finding is a :class:`~sensing.node.doctor.check.Check`, and
:func:`~sensing.node.doctor.check.fit` says the verdict. The checks, by what they look
at: the node's own host (:mod:`~sensing.node.doctor.host`: key file, clock, spool
disk), its radios (:mod:`~sensing.node.doctor.radios`), its sensor boards and beams
(:mod:`~sensing.node.doctor.boards`), and the broker (:mod:`~sensing.node.doctor.broker`).

Example output::

    ok    key file      /var/lib/footfall/store.key: epoch 3, mode 0600
    FAIL  clock         not synchronized (adjtimex) — fix: sudo timedatectl set-ntp true …
"""
