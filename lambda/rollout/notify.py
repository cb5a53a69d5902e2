"""Announcements on the rollout topic. A rollout's outcome is announced once per execution: whichever
path gets there first (Finalize, Rollback, the operator hand-over, or the safety net) claims the execution's
notice in the ledger, publishes, and marks it sent. A publish that fails gives the claim back, and a claim whose
sender died before sending (past the function's timeout) is taken again, so a later path still announces it.
Only a sender that dies between publishing and marking the notice sent can cause a second announcement."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

from rollout.contract import Plan
from rollout.ledger import Ledger

logger = Logger(child=True)


class Announcer:
    def __init__(self, ledger: Ledger, sns: Any, topic_arn: str) -> None:
        self._ledger = ledger
        self._sns = sns
        self._topic_arn = topic_arn

    def outcome(self, service: str, version: str, execution: str, status: str, detail: str) -> bool:
        """Announce the execution's outcome unless it was announced already; True once it has been
        announced (now or before). Never raises: an announcement must not change the outcome it announces."""
        try:
            claim = self._ledger.claim_notice(service, execution, status)
        except Exception:
            logger.exception("could not claim the notice", extra={"execution": execution, "status": status})
            return False
        if claim != "claimed":
            return claim == "sent"
        try:
            self._publish_with_retry(service, version, execution, status, detail)
        except Exception:
            logger.exception("announcement failed", extra={"execution": execution, "status": status})
            try:
                self._ledger.release_notice(service, execution)
            except Exception:
                logger.exception("could not release the notice", extra={"execution": execution})
            return False
        try:
            self._ledger.notice_sent(service, execution)
        except Exception:  # sent all the same; a later path might announce it once more
            logger.exception("could not mark the notice sent", extra={"execution": execution})
        return True

    def progress(self, plan: Plan, status: str, detail: str) -> None:
        """A message on the way (approval needed); best-effort, not deduplicated."""
        try:
            self._publish(plan.service, plan.version, plan.execution, status, detail)
        except Exception:
            logger.exception("announcement failed", extra={"execution": plan.execution, "status": status})

    def _publish_with_retry(self, service: str, version: str, execution: str, status: str, detail: str) -> None:
        """One more try after a failed publish: an outcome is announced once, so it is worth a second."""
        try:
            self._publish(service, version, execution, status, detail)
        except Exception:
            logger.warning("publish failed, trying once more", extra={"execution": execution})
            self._publish(service, version, execution, status, detail)

    def _publish(self, service: str, version: str, execution: str, status: str, detail: str) -> None:
        self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=f"Tessera rollout {service} {version}: {status}"[:100],
            Message=json.dumps(
                {"service": service, "version": version, "status": status, "detail": detail, "execution": execution}
            ),
        )
