"""Provisioning a store: its small PKI (:mod:`~sensing.provision.pki`) and the broker ACL
(:mod:`~sensing.provision.broker_acl`). The pseudonym key is provisioned by
``footfall keygen`` (:mod:`sensing.privacy.pseudonym`).
"""
