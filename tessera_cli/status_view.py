"""`tessera rollout status` for people: a short block, one labelled line per fact, none longer than a terminal.

The same document `--json` prints is the input; a fact the rollout does not have yet is left out, never shown as
"None"."""

from __future__ import annotations

from tessera_shared.constants import RUNNING

FIGURES = (
    ("requests", "requests"),
    ("errors_5xx", "5xx"),
    ("connection_errors", "connection errors"),
    ("p99_seconds", "p99 s"),
)


# The serving runtime's latencies (services with `metrics`): key in a track's `runtime`, label. Its errors, when
# they fail a canary, are in the judgement's reasons.
RUNTIME_FIGURES = (
    ("ttft_p99_seconds", "ttft p99"),
    ("tpot_p99_seconds", "tpot p99"),
    ("e2e_p99_seconds", "e2e p99"),
)


def _runtime_side_by_side(stable: dict, canary: dict) -> str | None:
    """`ttft p99 s 0.9 / 1.17, ...` (stable / canary), or None when neither track has runtime figures."""
    stable_runtime, canary_runtime = stable.get("runtime") or {}, canary.get("runtime") or {}
    if not stable_runtime and not canary_runtime:
        return None
    return ", ".join(
        f"{label} {_short(stable_runtime.get(name))} / {_short(canary_runtime.get(name))}"
        for name, label in RUNTIME_FIGURES
        if stable_runtime.get(name) is not None or canary_runtime.get(name) is not None
    )


def _short(seconds: object) -> str:
    return f"{seconds:.3g}s" if isinstance(seconds, int | float) else "-"


def cost_text(canary: dict | None, stable: dict | None) -> str:
    """`cost per million requests stable $x (gpu) / canary $y (trainium)`, "not measured" for a missing figure."""

    def one(figures: dict | None) -> str:
        cost = (figures or {}).get("cost_per_million_requests")
        amount = "not measured" if cost is None else f"${cost:,.2f}"
        target = (figures or {}).get("target")
        return f"{amount} ({target})" if target else amount

    return f"cost per million requests stable {one(stable)} / canary {one(canary)}"


def token_cost_text(canary: dict | None, stable: dict | None) -> str | None:
    """`per million output tokens stable $x / canary $y`, or None when neither track generated measured tokens."""
    costs = [(figures or {}).get("cost_per_million_output_tokens") for figures in (stable, canary)]
    if all(cost is None for cost in costs):
        return None
    stable_cost, canary_cost = ("not measured" if cost is None else f"${cost:,.2f}" for cost in costs)
    return f"per million output tokens stable {stable_cost} / canary {canary_cost}"


def _step(status: dict) -> str | None:
    step = status["step"]
    if status["status"] != RUNNING or not step.get("of"):
        return None
    if step["index"] >= step["of"]:
        return "all steps passed, promoting to stable"
    weight = step.get("canary_weight")
    at = f", canary at {weight}%" if weight is not None else ""
    return f"{step['index'] + 1} of {step['of']}{at}"


def _side_by_side(stable: dict, canary: dict) -> str:
    """`requests 3600 / 1200, 5xx 1 / 0, p99 s 0.44 / 0.41` (stable / canary), known figures only."""
    return ", ".join(
        f"{label} {stable.get(name)} / {canary.get(name)}"
        for name, label in FIGURES
        if stable.get(name) is not None or canary.get(name) is not None
    )


def status_block(status: dict) -> str:
    rows: list[tuple[str, str | None]] = [("step", _step(status))]
    if status.get("weights"):
        rows.append(("traffic", f"stable {status['weights']['stable']}% / canary {status['weights']['canary']}%"))
    replicas = status.get("replicas") or {}
    if status["status"] == RUNNING and replicas.get("canary") is not None:
        rows.append(("pods", f"stable {replicas.get('stable')} / canary {replicas['canary']}"))
    if status.get("bake_seconds_left"):
        rows.append(("bake", f"{status['bake_seconds_left']} s left"))
    judgement = status.get("last_judgement")
    if judgement:
        canary, stable = judgement.get("canary") or {}, judgement.get("stable") or {}
        rows.append(("judged", f"{judgement['verdict']}: stable / canary {_side_by_side(stable, canary)}"))
        rows.append(("runtime", _runtime_side_by_side(stable, canary)))
        rows.append(("cost", cost_text(canary, stable).removeprefix("cost ")))
        rows.append(("", token_cost_text(canary, stable)))
    interval = status.get("last_interval")
    if interval:
        start, end = (moment[11:19] for moment in interval.get("window") or ("", ""))
        figures = _side_by_side(interval["stable"], interval["canary"])
        rows.append(("interval", f"{start}-{end} {interval['verdict']} ({interval['failing_intervals']} failing)"))
        rows.append(("", f"stable / canary {figures}"))
        runtime = _runtime_side_by_side(interval["stable"], interval["canary"])
        if runtime:
            rows.append(("", f"stable / canary {runtime}"))
    for key, label in (("problem", "problem"), ("reason", "reason"), ("left_to_undo", "to undo")):
        if status.get(key):
            rows.append((label, str(status[key])))
    if status.get("approve_with"):
        rows.append(("approve", str(status["approve_with"])))
    if status.get("dashboard"):
        rows.append(("dashboard", str(status["dashboard"])))
    lines = [f"{status['service']} {status['version']}: {status['status']}"]
    lines += [f"  {label + ':' if label else '':<11}{value}" for label, value in rows if value]
    return "\n".join(lines)
