"""The ``footfall`` command: the table in :mod:`~sensing.cli.main`, one module per
command group. Each module is light at import time and imports its heavy libraries
(numpy, scipy, matplotlib, the aggregator) only when its command runs.
"""
