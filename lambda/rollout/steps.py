"""The rollout's steps. Each takes the execution's state (plan, progress) and the AWS/Kubernetes
clients, does one thing, and returns what the state machine keeps. Every step is safe to run twice:
it sets absolute values (weights, replicas, versions, states) rather than changing them by a delta,
and its audit record carries an id that is written once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rollout.capacity import pool_fit
from rollout.errors import RolloutError
from rollout.judge import AnalysisPolicy, ExtraMetricRule, judge
from rollout.kube import KubeClient, deployment_ready, ready_summary
from rollout.ledger import RUNNABLE_STATES, Ledger
from rollout.metrics import AlbMetrics, ExtraMetricQuery, PercentileReader, alarms_in_alarm, arn_dimension
from rollout.traffic import current_weights, healthy_targets, set_weights
from tessera_shared.constants import PROMOTED, ROLLED_BACK

DEFAULT_POLL_SECONDS = 30
# Policy fields a single rollout may override (see stacks/config/rollout.py for their meaning).
OVERRIDABLE = frozenset(
    {
        "steps",
        "warmup_seconds",
        "bake_seconds",
        "poll_seconds",
        "manual_approval",
        "approval_timeout_seconds",
        "ready_timeout_seconds",
        "analysis",
    }
)


@dataclass
class Clients:
    ledger: Ledger
    elbv2: Any
    cloudwatch: Any
    sns: Any
    ssm: Any
    kube: KubeClient
    percentiles: PercentileReader
    topic_arn: str
    settings_prefix: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def now(self) -> datetime:
        return self.clock()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


# -- preparing -------------------------------------------------------------------------------------
def prepare(request: dict, execution: str, clients: Clients) -> dict:
    """The execution's plan: the service's rollout settings with this rollout's overrides applied."""
    service, version = request.get("service"), request.get("version")
    if not isinstance(service, str) or not isinstance(version, str):
        raise RolloutError('start a rollout with {"service": ..., "version": ...}')
    name = f"{clients.settings_prefix}{service}"
    try:
        settings = json.loads(clients.ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except clients.ssm.exceptions.ParameterNotFound:
        raise RolloutError(f"service {service!r} has no rollout settings ({name})") from None
    overrides = request.get("overrides") or {}
    unknown = sorted(set(overrides) - OVERRIDABLE)
    if unknown:
        raise RolloutError(f"overrides {unknown} are not rollout policy fields; allowed: {sorted(OVERRIDABLE)}")
    policy = {**settings["policy"], **{k: v for k, v in overrides.items() if k != "analysis"}}
    policy["analysis"] = {**settings["policy"]["analysis"], **overrides.get("analysis", {})}
    record = clients.ledger.version(service, version)
    image_tag = (record or {}).get("image", ":").rsplit(":", 1)[-1]
    return {
        "service": service,
        "version": version,
        "execution": execution,
        "started_at": _iso(clients.now()),
        "namespace": settings["namespace"],
        "stable_deployment": settings["stable_deployment"],
        "canary_deployment": settings["canary_deployment"],
        "rule_arn": settings["rule_arn"],
        "stable_tg": settings["stable_target_group"],
        "canary_tg": settings["canary_target_group"],
        "load_balancer": settings["load_balancer"],
        "image": f"{settings['image_repository_uri']}:{image_tag}",
        "model_uri": f"s3://{settings['model_bucket']}/{settings['model_prefix']}{version}/",
        "stable_version": clients.ledger.pointer(service).get("stable"),
        "pool": settings.get("pool"),
        "steps": policy["steps"],
        "warmup_seconds": policy["warmup_seconds"],
        "bake_seconds": policy["bake_seconds"],
        "poll_seconds": policy.get("poll_seconds", DEFAULT_POLL_SECONDS),
        "ready_timeout_seconds": policy.get("ready_timeout_seconds", settings["ready_timeout_seconds"]),
        "manual_approval": policy["manual_approval"],
        "approval_timeout_seconds": policy["approval_timeout_seconds"],
        "analysis": policy["analysis"],
    }


def acquire_lock(plan: dict, clients: Clients) -> dict:
    clients.ledger.acquire_lock(plan["service"], execution=plan["execution"], version=plan["version"])
    clients.ledger.start_record(plan)
    return {}


def preflight(plan: dict, clients: Clients) -> dict:
    """Nothing moves unless the version is registered, the service is at rest and the pool can fit it."""
    record = clients.ledger.version(plan["service"], plan["version"])
    if record is None or record["state"] not in RUNNABLE_STATES:
        state = record["state"] if record else "not in the registry"
        raise RolloutError(f"{plan['service']} version {plan['version']} is {state}; only registered versions roll out")
    weights = current_weights(clients.elbv2, rule_arn=plan["rule_arn"])
    if weights.get(plan["canary_tg"], 0) != 0:
        raise RolloutError(f"{plan['service']} is not at rest: the canary has weight {weights[plan['canary_tg']]}")
    stable = clients.kube.get_deployment(plan["namespace"], plan["stable_deployment"])
    stable_replicas = stable["spec"].get("replicas", 0)
    most_canary = canary_replicas(stable_replicas, max(plan["steps"]))
    pool = plan.get("pool")
    checks = {"stable_replicas": stable_replicas, "most_canary_replicas": most_canary}
    if pool:
        fit = pool_fit(pool, pods=stable_replicas + most_canary)
        checks |= fit.evidence
        if not fit.fits:
            raise RolloutError(
                f"pool cannot fit the canary: {stable_replicas} stable + {most_canary} canary pods {fit.shortfall}"
            )
    _audit(clients, plan, "preflight", {"verdict": "PASS", **checks})
    return {"stable_replicas": stable_replicas}


def canary_replicas(stable_replicas: int, weight: int) -> int:
    """Capacity follows traffic: the canary gets its share of stable's pods, and at least one."""
    return max(1, math.ceil(stable_replicas * weight / 100))


# -- the canary ------------------------------------------------------------------------------------
def deploy_canary(plan: dict, preflight_result: dict, clients: Clients) -> dict:
    replicas = canary_replicas(preflight_result["stable_replicas"], plan["steps"][0])
    _run_new_version(plan, clients, plan["canary_deployment"])
    clients.kube.scale(plan["namespace"], plan["canary_deployment"], replicas)
    _audit(clients, plan, "deploy-canary", {"replicas": replicas, "image": plan["image"]})
    return _progress(plan, clients, step=0, replicas=replicas, stable_replicas=preflight_result["stable_replicas"])


def check_ready(plan: dict, progress: dict, track: str, clients: Clients) -> dict:
    """Is the track's Deployment fully rolled out? Past the deadline it is an error."""
    name = plan["canary_deployment"] if track == "canary" else plan["stable_deployment"]
    deployment = clients.kube.get_deployment(plan["namespace"], name)
    if deployment_ready(deployment):
        return {"ready": True}
    if clients.now() > _parse(progress["deadline"]):
        raise RolloutError(f"{name} not ready after {plan['ready_timeout_seconds']} s: {ready_summary(deployment)}")
    return {"ready": False, "summary": ready_summary(deployment)}


def check_warm(plan: dict, progress: dict, clients: Clients) -> dict:
    """After the warm-up at 0 % traffic every canary pod must be a healthy target."""
    healthy, registered = healthy_targets(clients.elbv2, target_group=plan["canary_tg"])
    if healthy < progress["replicas"] or healthy != registered:
        raise RolloutError(
            f"canary warm-up failed: {healthy} of {registered} targets healthy, {progress['replicas']} expected"
        )
    _audit(clients, plan, "warm-up", {"verdict": "PASS", "healthy_targets": healthy})
    return progress


def scale_canary(plan: dict, progress: dict, clients: Clients) -> dict:
    weight = plan["steps"][progress["step"]]
    replicas = canary_replicas(progress["stable_replicas"], weight)
    clients.kube.scale(plan["namespace"], plan["canary_deployment"], replicas)
    return _progress(
        plan, clients, step=progress["step"], replicas=replicas, stable_replicas=progress["stable_replicas"]
    )


def shift_traffic(plan: dict, progress: dict, clients: Clients) -> dict:
    weight = plan["steps"][progress["step"]]
    weights = _set_canary_weight(plan, clients, weight)
    _audit(
        clients,
        plan,
        f"step-{progress['step']}-weights",
        {"step": progress["step"], "canary_weight": weight, "weights": weights},
    )
    return {**progress, "step_started_at": _iso(clients.now()), "extensions": 0}


def evaluate(plan: dict, progress: dict, clients: Clients) -> dict:
    """Judge the canary against stable over the step so far; extend the bake while data is short."""
    analysis = plan["analysis"]
    start, end = _parse(progress["step_started_at"]), clients.now()
    metrics = AlbMetrics(clients.cloudwatch, clients.percentiles, load_balancer=arn_dimension(plan["load_balancer"]))
    extra = [
        ExtraMetricQuery(
            name=m["name"],
            namespace=m["namespace"],
            metric_name=m["metric_name"],
            statistic=m["statistic"],
            dimensions={k: v.replace("{service}", plan["service"]) for k, v in m["dimensions"].items()},
        )
        for m in analysis["extra_metrics"]
    ]
    stats = {
        track: metrics.track_stats(
            track=track, target_group=arn_dimension(plan[f"{track}_tg"]), start=start, end=end, extra=extra
        )
        for track in ("canary", "stable")
    }
    alarms = alarms_in_alarm(clients.cloudwatch, analysis["alarms"])
    judgement = judge(_analysis_policy(analysis), stats["canary"], stats["stable"], alarms)
    verdict, extensions = judgement.verdict, progress["extensions"]
    reasons = list(judgement.reasons)
    if verdict == "NOT_ENOUGH_DATA":
        if extensions >= analysis["max_bake_extensions"]:
            verdict = "FAIL"
            reasons.append(f"still not enough data after {extensions} bake extension(s)")
        else:
            extensions += 1
    _audit(
        clients,
        plan,
        f"step-{progress['step']}-judgement-{progress['extensions']}",
        {
            "step": progress["step"],
            "canary_weight": plan["steps"][progress["step"]],
            "window": [_iso(start), _iso(end)],
            "canary": _stats_dict(stats["canary"]),
            "stable": _stats_dict(stats["stable"]),
            "alarms_in_alarm": alarms,
            "thresholds": {k: v for k, v in analysis.items() if k != "extra_metrics"},
            "judgement": judgement.as_dict(),
            "verdict": verdict,
            "reasons": reasons,
        },
    )
    return {**progress, "verdict": verdict, "extensions": extensions, "reasons": reasons}


def advance(plan: dict, progress: dict) -> dict:
    step = progress["step"] + 1
    return {**progress, "step": step, "done": step >= len(plan["steps"]), "verdict": None}


def await_approval(plan: dict, token: str, clients: Clients) -> dict:
    """Park the execution until an operator approves (or rejects) promotion; the token is how."""
    clients.ledger.record_decision(plan, {"id": "approval-requested", "step": "approval", "task_token": token})
    _notify(clients, plan, "APPROVAL_NEEDED", f"approve with: tessera rollout approve {plan['service']}")
    return {}


# -- the end ---------------------------------------------------------------------------------------
def promote_stable(plan: dict, progress: dict, clients: Clients) -> dict:
    _run_new_version(plan, clients, plan["stable_deployment"])
    _audit(clients, plan, "promote-stable", {"version": plan["version"]})
    return {**progress, "deadline": _iso(clients.now() + timedelta(seconds=plan["ready_timeout_seconds"]))}


def finalize(plan: dict, clients: Clients) -> dict:
    """Stable serves the new version: traffic back to stable, canary to zero, pointer moved."""
    _return_to_rest(plan, clients)
    clients.ledger.set_version_state(plan["service"], plan["version"], PROMOTED)
    clients.ledger.set_pointer(plan["service"], stable=plan["version"], canary=None)
    clients.ledger.finish_record(plan, "PROMOTED")
    clients.ledger.release_lock(plan["service"], execution=plan["execution"])
    _notify(clients, plan, "PROMOTED", f"{plan['version']} is now stable")
    return {"status": "PROMOTED"}


def rollback(plan: dict, progress: dict | None, error: dict | None, clients: Clients) -> dict:
    """Traffic to stable first, then the canary to zero; a version that reached the canary is marked
    ROLLED_BACK (one refused at preflight keeps its state: it never ran)."""
    reason = _error_text(error)
    _return_to_rest(plan, clients)
    record = clients.ledger.version(plan["service"], plan["version"])
    if (progress or {}).get("deployed") and record is not None and record["state"] != PROMOTED:
        clients.ledger.set_version_state(plan["service"], plan["version"], ROLLED_BACK)
    clients.ledger.record_decision(
        plan, {"id": "rollback", "step": "rollback", "verdict": "ROLLED_BACK", "reason": reason}
    )
    clients.ledger.finish_record(plan, ROLLED_BACK, reason=reason)
    clients.ledger.release_lock(plan["service"], execution=plan["execution"])
    _notify(clients, plan, ROLLED_BACK, reason)
    return {"status": ROLLED_BACK, "reason": reason}


# -- helpers ---------------------------------------------------------------------------------------
def _run_new_version(plan: dict, clients: Clients, deployment: str) -> None:
    clients.kube.set_version(
        plan["namespace"], deployment, image=plan["image"], model_version=plan["version"], model_uri=plan["model_uri"]
    )


def _return_to_rest(plan: dict, clients: Clients) -> None:
    """Stable 100 / canary 0 first, then the canary's pods go: nobody is sent to a pod that is leaving."""
    _set_canary_weight(plan, clients, 0)
    clients.kube.scale(plan["namespace"], plan["canary_deployment"], 0)


def _set_canary_weight(plan: dict, clients: Clients, weight: int) -> dict[str, int]:
    return set_weights(
        clients.elbv2,
        rule_arn=plan["rule_arn"],
        stable_tg=plan["stable_tg"],
        canary_tg=plan["canary_tg"],
        canary_weight=weight,
    )


def _progress(plan: dict, clients: Clients, *, step: int, replicas: int, stable_replicas: int) -> dict:
    deadline = clients.now() + timedelta(seconds=plan["ready_timeout_seconds"])
    return {
        "deployed": True,
        "step": step,
        "replicas": replicas,
        "stable_replicas": stable_replicas,
        "extensions": 0,
        "deadline": _iso(deadline),
        "done": False,
    }


def _analysis_policy(analysis: dict) -> AnalysisPolicy:
    return AnalysisPolicy(
        max_5xx_rate=analysis["max_5xx_rate_percent"] / 100,
        max_5xx_ratio_vs_stable=analysis["max_5xx_ratio_vs_stable"],
        max_p99_seconds=analysis["max_p99_seconds"],
        max_p99_ratio_vs_stable=analysis["max_p99_ratio_vs_stable"],
        min_requests=analysis["min_requests"],
        extra_metrics=tuple(
            ExtraMetricRule(
                name=m["name"],
                threshold=m["threshold"],
                direction=m["direction"],
                max_ratio_vs_stable=m.get("max_ratio_vs_stable"),
            )
            for m in analysis["extra_metrics"]
        ),
    )


def _stats_dict(stats: Any) -> dict:
    return {
        "requests": stats.requests,
        "errors_5xx": stats.errors_5xx,
        "p99_seconds": stats.p99_seconds,
        "extra": dict(stats.extra),
    }


def _audit(clients: Clients, plan: dict, decision_id: str, details: dict) -> None:
    clients.ledger.record_decision(plan, {"id": decision_id, "step": decision_id, **details})


def _notify(clients: Clients, plan: dict, status: str, detail: str) -> None:
    clients.sns.publish(
        TopicArn=clients.topic_arn,
        Subject=f"Tessera rollout {plan['service']} {plan['version']}: {status}"[:100],
        Message=json.dumps(
            {
                "service": plan["service"],
                "version": plan["version"],
                "status": status,
                "detail": detail,
                "execution": plan["execution"],
            }
        ),
    )


def _error_text(error: dict | None) -> str:
    if not error:
        return "rolled back"
    cause = error.get("Cause", "")
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        parsed = cause
    if isinstance(parsed, dict):  # a Lambda error: {"errorType": ..., "errorMessage": ...}
        cause = parsed.get("errorMessage", cause)
    elif isinstance(parsed, list):  # the judgement's reasons
        cause = "; ".join(str(reason) for reason in parsed)
    return f"{error.get('Error', 'Error')}: {cause}".strip()
