"""The broker as the privacy audit sees it: the ACL in force against the generated one,
and what ``mosquitto.conf`` lets through or keeps on disk.

The ACL :mod:`sensing.provision.broker_acl` generates is the only one footfall's privacy
model holds for: nodes write their own topics and read nothing, only the aggregator reads
the pseudonymous ``obs``, BI reads aggregates. :func:`acl_findings` compares an ACL file
grant by grant with the generated one (for the BI users the file names) and says every
difference in one line. :func:`broker_conf` reads the settings that matter: anonymous
access, the ACL file, persistence (Mosquitto saves retained messages and the queues of
persistent sessions there: the aggregator's queue holds pseudonymous batches while it is
away).

>>> acl = parse_acl("user node-n1\\ntopic write footfall/v1/demo/node/n1/obs\\ntopic read #\\n")
>>> sorted(acl.grants["node-n1"])
[('read', '#'), ('write', 'footfall/v1/demo/node/n1/obs')]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sensing.provision.broker_acl import StoreLayout, acl_text

ANYONE = "(anyone)"
"""grants before the first ``user`` line: Mosquitto applies them to every client"""


@dataclass
class Acl:
    grants: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    """user → (``read`` | ``write``, topic filter)"""
    patterns: list[str] = field(default_factory=list)
    """``pattern`` lines (apply to every client, with %u/%c substituted)"""
    unknown: list[str] = field(default_factory=list)
    """lines Mosquitto would not read as an ACL line"""


def parse_acl(text: str) -> Acl:
    """A Mosquitto ``acl_file``: ``user``, ``topic [read|write|readwrite|deny] T``, ``pattern``."""
    acl = Acl()
    user = ANYONE
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "user":
            user = rest
            acl.grants.setdefault(user, set())
        elif word == "topic":
            access, _, topic = rest.partition(" ")
            if access not in ("read", "write", "readwrite", "deny"):
                access, topic = "readwrite", rest
            topic = topic.strip()
            if access == "deny":
                continue  # takes away, never grants
            for a in ("read", "write"):
                if a in access:
                    acl.grants.setdefault(user, set()).add((a, topic))
        elif word == "pattern":
            acl.patterns.append(line)
        else:
            acl.unknown.append(f"line {n}: {line[:60]}")
    return acl


def bi_clients_in(acl: Acl) -> list[str]:
    return sorted(u.removeprefix("bi-") for u in acl.grants if u.startswith("bi-"))


def acl_findings(given_text: str, layout: StoreLayout, source: str) -> list[str]:
    """Every difference between the ACL ``given_text`` (from ``source``) and the one
    generated for ``layout`` (with the BI clients the given file names), one line each."""
    given = parse_acl(given_text)
    lay = StoreLayout(layout.store, layout.nodes, tuple(bi_clients_in(given)))
    want = parse_acl(acl_text(lay))
    out: list[str] = []
    for user in sorted(set(given.grants) | set(want.grants)):
        has, should = given.grants.get(user, set()), want.grants.get(user, set())
        if user not in want.grants and has:
            who = "every client" if user == ANYONE else f"user {user} (not in the generated ACL)"
            grants = ", ".join(f"{a} {t}" for a, t in sorted(has))
            out.append(f"{source}: {who} may {grants}")
            continue
        for a, t in sorted(has - should):
            out.append(f"{source}: user {user} may {a} {t}: the generated ACL does not grant it")
        for a, t in sorted(should - has):
            out.append(f"{source}: user {user} lacks {a} {t} (the generated ACL grants it)")
    out += [
        f"{source}: {p!r} applies to every client (the generated ACL has none)"
        for p in given.patterns
    ]
    out += [f"{source}: {u}: not an ACL line" for u in given.unknown]
    return out


@dataclass
class BrokerConf:
    """What a ``mosquitto.conf`` says about access and persistence (last value wins)."""

    path: Path
    allow_anonymous: bool | None = None
    acl_file: Path | None = None
    persistence: bool = False
    persistence_file: Path | None = None
    """where the persistence database is (``persistence_location`` + ``persistence_file``)"""


def broker_conf(path: Path) -> BrokerConf:
    """The settings of ``path`` (its ``include_dir`` is not followed: pass the file that
    holds them, e.g. Debian's ``/etc/mosquitto/mosquitto.conf`` and footfall's conf.d file
    in two runs)."""
    conf = BrokerConf(path)
    location, name = None, "mosquitto.db"
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        value = value.strip()
        if key == "allow_anonymous":
            conf.allow_anonymous = value == "true"
        elif key == "acl_file":
            conf.acl_file = Path(value)
        elif key == "persistence":
            conf.persistence = value == "true"
        elif key == "persistence_location":
            location = Path(value)
        elif key == "persistence_file":
            name = value
    if conf.persistence:
        conf.persistence_file = (location or path.parent) / name
    return conf


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether an ACL topic filter (``+``, ``#``) covers ``topic`` (itself maybe a filter:
    ``+`` in it is covered by ``+`` or ``#`` only).

    >>> topic_matches("footfall/v1/demo/node/+/obs", "footfall/v1/demo/node/+/obs")
    True
    >>> topic_matches("#", "footfall/v1/demo/node/+/obs"), topic_matches("footfall/+", "a/b")
    (True, False)
    """
    p, t = pattern.split("/"), topic.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(p) == len(t)


def readers(acl_text_: str, topic: str) -> list[str]:
    """Who may read ``topic`` under the ACL ``acl_text_``: users, ``(anyone)`` for grants
    before any user, and the ``pattern`` lines (which apply to every client)."""
    acl = parse_acl(acl_text_)
    who = sorted(
        u
        for u, grants in acl.grants.items()
        if any(a == "read" and topic_matches(t, topic) for a, t in grants)
    )
    for line in acl.patterns:
        parts = line.split()  # pattern [read|write|readwrite] TOPIC
        access = parts[1] if len(parts) > 2 else "readwrite"
        topic_filter = parts[-1].replace("%u", "+").replace("%c", "+")
        if "read" in access and topic_matches(topic_filter, topic):
            who.append(f"every client ({line})")
    return who
