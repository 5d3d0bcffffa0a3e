"""The privacy officer's kit: the in-store notice, the audit and the inventory (issue 21).

``footfall privacy notice|audit|inventory`` (:mod:`sensing.cli.privacy`); docs/privacy.md.
"""
