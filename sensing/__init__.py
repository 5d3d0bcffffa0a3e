"""footfall node side: capture, pseudonymize, batch and publish.

This package is what every install has (a ceiling node runs nothing else), so it
also holds the wire contract shared with the aggregator (:mod:`sensing.topics`,
:mod:`sensing.payloads`) and the ``footfall`` command line (:mod:`sensing.cli`).
It never imports the aggregator's heavy dependencies (matplotlib, scipy).
"""

__version__ = "0.1.0"
