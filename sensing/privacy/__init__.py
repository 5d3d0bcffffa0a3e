"""Privacy on the node: keyed rotating pseudonyms and the opt-out list.

:mod:`~sensing.privacy.pseudonym` turns an address into ``HMAC-SHA256(K_epoch, addr)[:8]``
under a forward-secure ratchet, with its key on disk in :mod:`~sensing.privacy.key_file`
and in memory only as erasable ``bytearray`` (:mod:`~sensing.privacy.key_memory`);
:mod:`~sensing.privacy.optout` drops opted-out addresses, kept only as keyed hashes,
before anything else happens.
"""
