"""The privacy audit's result: checks, each passed or with its findings, as text and JSON.

Every finding is one line that says what and where; the audit passes only when no check
has one. ``footfall privacy audit`` prints :meth:`AuditReport.text`, writes
:meth:`AuditReport.as_json` with ``--json``, and exits 1 on a finding.

>>> r = AuditReport("node n1")
>>> r.add("file modes", [], "4 files checked")
>>> r.add("raw identifiers", ["spool.db: table x: a MAC address (**:**:**:**:**:5f)"])
>>> r.passed
False
>>> print(r.text().splitlines()[-1])
FAIL: 1 finding in 1 of 2 checks
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Check:
    name: str
    findings: list[str]
    checked: str = ""
    """what was looked at, in a few words (``3 files, 27,460 rows``)"""

    @property
    def passed(self) -> bool:
        return not self.findings


@dataclass
class AuditReport:
    subject: str
    """what was audited (``store demo``, ``node n1``)"""
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, findings: list[str], checked: str = "") -> None:
        self.checks.append(Check(name, list(findings), checked))

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def findings(self) -> int:
        return sum(len(c.findings) for c in self.checks)

    def text(self) -> str:
        lines = [f"footfall privacy audit: {self.subject}"]
        for c in self.checks:
            mark = "pass" if c.passed else "FAIL"
            lines.append(f"  {mark}  {c.name}" + (f" ({c.checked})" if c.checked else ""))
            lines += [f"        - {f}" for f in c.findings]
        failed = sum(not c.passed for c in self.checks)
        if self.passed:
            lines.append(f"PASS: {len(self.checks)} checks, no finding")
        else:
            n = self.findings
            lines.append(
                f"FAIL: {n} finding{'s' if n != 1 else ''} in {failed} of {len(self.checks)} checks"
            )
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "passed": self.passed,
            "findings": self.findings,
            "checks": [{**asdict(c), "passed": c.passed} for c in self.checks],
        }

    def dumps(self) -> str:
        return json.dumps(self.as_json(), indent=1, ensure_ascii=False)
