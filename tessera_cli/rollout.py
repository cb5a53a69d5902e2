"""`tessera rollout ...`: start, watch, approve, abort, unlock and review model rollouts."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rollout.contract import ContractError, Plan, ServiceSettings
from rollout.contract.records import AuditEntry, AuditKind, RolloutRecord
from rollout.ledger import RUNNABLE_STATES, Ledger
from rollout.policy import OverrideError, apply_overrides, check_overrides
from rollout.policy_fields import describe_fields
from tessera_cli.environment import Environment
from tessera_cli.errors import EXIT_INTERRUPTED, EXIT_NOT_FOUND, EXIT_OK, EXIT_REJECTED, EXIT_USAGE, CliError
from tessera_cli.names import check_names, known_service
from tessera_cli.output import Printer
from tessera_cli.status_view import cost_text, status_block
from tessera_shared.constants import (
    ABORTED,
    PROMOTED,
    QUIESCENCE_SECONDS,
    RUNNING,
    SAFETY_NET_MAX_EVENT_AGE_SECONDS,
)

TERMINAL_EXECUTION = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
RAW = argparse.RawDescriptionHelpFormatter

START_HELP = f"""examples:
  tessera --env prod rollout start assistant 2026-11-20
  tessera rollout start assistant 2026-11-20 --override bake_seconds=1800 --override manual_approval=true
  tessera rollout start assistant 2026-11-20 --override analysis.min_requests=500

overridable keys (--override KEY=JSON, checked before anything starts). An override may only tighten the
service's policy: each key moves only the way shown, and loosening a gate is a config change:
{describe_fields()}

in this command: 0 started; 1 refused (version not startable, service busy); 2 invalid or loosening override;
3 service or version not found"""

STATUS_HELP = """examples:
  tessera rollout status assistant
  tessera rollout status assistant --watch            # print on change, exit with the outcome
  tessera --json rollout status assistant --watch     # one JSON line per change

in this command: 0 running or promoted; 1 failed, rolled back, aborted, timed out or needs an operator;
3 never rolled out"""

ABORT_HELP = """The rollout stops at its next step and rolls back inside its state machine, so nothing it was
doing lands after the abort. By default the command waits until the rollout has ended.

examples:
  tessera rollout abort assistant --reason "latency regression seen by on-call"
  tessera rollout abort assistant --no-wait

in this command: 0 aborted; 1 the rollout ended otherwise (or not within --timeout); 3 nothing running"""

UNLOCK_HELP = """Only for a service whose rollout could not clean up (NEEDS_OPERATOR) or whose lock is stuck:
first bring traffic, stable and canary back by hand (see `rollout status`), then free the lock.

examples:
  tessera rollout unlock assistant --force
  tessera rollout unlock assistant --force --yes      # no confirmation prompt

in this command: 0 unlocked; 1 not confirmed or refused; 2 --force missing; 3 not locked"""


def add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser(
        "start", help="start rolling a registered version out", epilog=START_HELP, formatter_class=RAW
    )
    start.add_argument("service")
    start.add_argument("version")
    start.add_argument("--override", action="append", default=[], metavar="KEY=JSON", help="policy override")
    start.set_defaults(run=start_rollout)
    status = commands.add_parser(
        "status", help="the service's current (or last) rollout", epilog=STATUS_HELP, formatter_class=RAW
    )
    status.add_argument("service")
    status.add_argument("--watch", action="store_true", help="print on every change until the rollout ends")
    status.add_argument("--interval", type=float, default=10.0, help="seconds between looks with --watch")
    status.set_defaults(run=show_status)
    approve = commands.add_parser(
        "approve",
        help="let a rollout waiting for approval promote (or --reject it)",
        epilog="examples:\n  tessera rollout approve assistant\n  tessera rollout approve assistant --reject "
        '"eval regressed"\n\nin this command: 0 done; 3 nothing waits for approval',
        formatter_class=RAW,
    )
    approve.add_argument("service")
    approve.add_argument("--reject", metavar="REASON", help="reject instead: the rollout rolls back")
    approve.set_defaults(run=approve_rollout)
    abort = commands.add_parser(
        "abort", help="stop the running rollout and roll it back", epilog=ABORT_HELP, formatter_class=RAW
    )
    abort.add_argument("service")
    abort.add_argument("--reason", default="aborted by an operator")
    abort.add_argument("--no-wait", action="store_true", help="return once the abort is requested")
    abort.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the rollout to end")
    abort.set_defaults(run=abort_rollout)
    unlock = commands.add_parser(
        "unlock", help="free a service's rollout lock by force", epilog=UNLOCK_HELP, formatter_class=RAW
    )
    unlock.add_argument("service")
    unlock.add_argument("--force", action="store_true", help="required: this bypasses every safety check")
    unlock.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    unlock.set_defaults(run=unlock_service)
    history = commands.add_parser(
        "history",
        help="the service's rollouts, newest first",
        epilog="examples:\n  tessera rollout history assistant\n\nin this command: 0 listed; 3 unknown service",
        formatter_class=RAW,
    )
    history.add_argument("service")
    history.set_defaults(run=show_history)


def _ledger(env: Environment) -> Ledger:
    return Ledger(env.client("dynamodb"), env.parameter("artifacts/registry-table-name"))


def parse_overrides(pairs: list[str]) -> dict:
    """`KEY=JSON` pairs, checked against the overridable fields; exit 2 before any AWS call."""
    overrides: dict = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise CliError(f"--override {pair!r}: expected KEY=JSON", EXIT_USAGE)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            raise CliError(f"--override {pair!r}: {value!r} is not JSON", EXIT_USAGE) from None
    try:
        return check_overrides(overrides)
    except OverrideError as error:
        raise CliError(f"invalid overrides: {'; '.join(error.problems)}", EXIT_USAGE) from None


def start_rollout(args: argparse.Namespace, printer: Printer) -> int:
    check_names(args.service, args.version)
    overrides = parse_overrides(args.override)
    env = Environment(args.env, args.region)
    known_service(env, args.service)
    policy = service_settings(env, args.service).policy
    try:
        apply_overrides(policy, overrides)
    except OverrideError as error:
        raise CliError(f"invalid overrides: {'; '.join(error.problems)}", EXIT_USAGE) from None
    ledger = _ledger(env)
    record = ledger.version(args.service, args.version)
    if record is None:
        raise CliError(f"{args.service} version {args.version} not found in the registry", EXIT_NOT_FOUND)
    if record["state"] not in RUNNABLE_STATES:
        raise CliError(
            f"{args.service} version {args.version} is {record['state']}; only {' or '.join(RUNNABLE_STATES)} "
            "versions roll out",
            EXIT_REJECTED,
        )
    holder = ledger.locks.holder(args.service)
    if holder:
        raise CliError(
            f"{args.service} is already being rolled out: version {holder['version']} by {holder['execution']}",
            EXIT_REJECTED,
        )
    request = {"service": args.service, "version": args.version, "overrides": overrides}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    response = env.client("stepfunctions").start_execution(
        stateMachineArn=env.parameter("rollout/state-machine-arn"),
        name=f"{args.service}-{args.version}-{stamp}"[:80],
        input=json.dumps(request),
    )
    printer.result(
        {"execution": response["executionArn"], **request},
        f"started {args.service} {args.version}: {response['executionArn']}",
    )
    return EXIT_OK


def service_settings(env: Environment, service: str) -> ServiceSettings:
    """The service's rollout settings as the Rollout stack published them."""
    raw = env.parameter(f"rollout/services/{service}")
    try:
        return ServiceSettings.from_json(json.loads(raw), where="settings")
    except (ContractError, ValueError) as error:
        raise CliError(f"rollout settings of {service} are unreadable: {error}", EXIT_REJECTED) from None


# -- status ----------------------------------------------------------------------------------------
def dashboard_link(env: Environment, service: str) -> str | None:
    """The service's CloudWatch dashboard, as the Observability stack published it (None before it is deployed)."""
    try:
        return env.parameter(f"observability/services/{service}/dashboard")
    except CliError:
        return None


def describe(env: Environment, ledger: Ledger, service: str, *, dashboard: str | None = None) -> dict:
    """The rollout's state as one JSON document (the shape `--json` prints)."""
    record = ledger.latest_rollout(service)
    if record is None:
        raise CliError(f"{service} has never been rolled out", EXIT_NOT_FOUND)
    execution = env.client("stepfunctions").describe_execution(executionArn=record.execution)
    plan = record.plan
    status: str = record.status
    problem = None
    if status == RUNNING and execution["status"] in TERMINAL_EXECUTION:
        # The record never heard how it ended: say so, with what Step Functions knows.
        problem = f"execution {execution['status']}: {execution.get('error', '')} {execution.get('cause', '')}".strip()
        status = execution["status"] if execution["status"] != "SUCCEEDED" else PROMOTED
    judgement = _last_judgement(ledger, record)
    waiting = status == RUNNING and record.awaiting_approval
    steps = plan.policy.steps
    progress = record.progress
    step = progress.step if progress else 0
    return {
        "service": service,
        "version": record.version,
        "previous": record.previous,
        "status": status,
        "execution": record.execution,
        "execution_status": execution["status"],
        "problem": problem,
        "reason": record.reason or None,
        "left_to_undo": record.left_to_undo or None,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "step": {"index": step, "of": len(steps), "canary_weight": steps[step] if step < len(steps) else None},
        "weights": _weights(env, plan) if status == RUNNING else None,
        "replicas": {
            "canary": progress.replicas if progress else None,
            "stable": progress.stable_replicas if progress else None,
        },
        "bake_seconds_left": _seconds_left(progress.bake_until if progress else None) if status == RUNNING else None,
        "last_judgement": judgement
        and {
            "step": judgement.step,
            "canary_weight": judgement.details.get("canary_weight"),
            "verdict": judgement.verdict,
            "reasons": judgement.reasons,
            **{track: _with_cost(judgement.details.get(track)) for track in TRACKS},
        },
        "last_interval": _last_interval(ledger, service, record),
        "approve_with": f"tessera --env {env.name} rollout approve {service}" if waiting else None,
        "dashboard": dashboard,
    }


TRACKS = ("canary", "stable")


def _last_judgement(ledger: Ledger, record: RolloutRecord) -> AuditEntry | None:
    newest = ledger.judgements(record, last=1)
    return newest[0] if newest else None


def _with_cost(figures: dict | None) -> dict | None:
    """A track's figures at a judgement with its cost per million requests lifted out of the recorded cost
    (None: not measured, or a judgement recorded before cost was)."""
    if figures is None:
        return None
    shown = {key: value for key, value in figures.items() if key != "cost"}
    return {**shown, "target": figures.get("target"), **_costs_of(figures)}


def _runtime_of(figures: dict | None) -> dict[str, dict]:
    """The track's serving-runtime figures under `runtime`, for a service with runtime metrics (absent otherwise)."""
    runtime = (figures or {}).get("runtime")
    return {"runtime": runtime} if runtime else {}


def _costs_of(figures: dict | None) -> dict[str, float | None]:
    """The track's cost per million requests and per million output tokens (None: not measured, or no runtime
    metrics)."""
    cost = (figures or {}).get("cost") or {}
    return {name: cost.get(name) for name in ("cost_per_million_requests", "cost_per_million_output_tokens")}


def _last_interval(ledger: Ledger, service: str, record: RolloutRecord) -> dict | None:
    """The newest analysis interval judged within a bake, canary and stable figures side by side."""
    newest = ledger.intervals(service, record.started_at, record.execution, last=1)
    if not newest:
        return None
    interval = newest[0]
    figures = ("requests", "errors_5xx", "connection_errors", "p99_seconds", "target")
    judgement = interval.get("judgement") or {}
    return {
        "step": interval["step"],
        "interval": interval["interval"],
        "window": interval.get("window"),
        "verdict": judgement.get("verdict"),
        "failing_intervals": interval.get("failing_intervals"),
        **{
            track: {
                **{name: (interval.get(track) or {}).get(name) for name in figures},
                **_costs_of(interval.get(track)),
                **_runtime_of(interval.get(track)),
            }
            for track in TRACKS
        },
    }


def _weights(env: Environment, plan: Plan) -> dict:
    [rule] = env.client("elbv2").describe_rules(RuleArns=[plan.rule_arn])["Rules"]
    forward = next(a for a in rule["Actions"] if a["Type"] == "forward")
    weights = {
        g["TargetGroupArn"]: g.get("Weight", 1) for g in forward.get("ForwardConfig", {}).get("TargetGroups", [])
    }
    return {"stable": weights.get(plan.stable_tg, 0), "canary": weights.get(plan.canary_tg, 0)}


def _seconds_left(until: str | None) -> int | None:
    if not until:
        return None
    return max(0, int((datetime.fromisoformat(until) - datetime.now(UTC)).total_seconds()))


def _exit_for(status: dict) -> int:
    return EXIT_OK if status["status"] in (RUNNING, PROMOTED) else EXIT_REJECTED


def show_status(args: argparse.Namespace, printer: Printer) -> int:
    check_names(args.service)
    env = Environment(args.env, args.region)
    known_service(env, args.service)
    ledger = _ledger(env)
    dashboard = dashboard_link(env, args.service)
    if not args.watch:
        status = describe(env, ledger, args.service, dashboard=dashboard)
        printer.result(status, status_block(status))
        return _exit_for(status)
    return watch(lambda: describe(env, ledger, args.service, dashboard=dashboard), printer, interval=args.interval)


def watch(
    look: Callable[[], dict], printer: Printer, *, interval: float, sleep: Callable[[float], None] = time.sleep
) -> int:
    """Print on every change (with a timestamp; one JSON line per change with --json) until the rollout
    ends, then exit with its outcome. Ctrl-C ends it cleanly."""
    last: dict | None = None
    try:
        while True:
            status = look()
            shown = {k: v for k, v in status.items() if k != "bake_seconds_left"}
            if shown != last:
                last = shown
                stamp = datetime.now(UTC).strftime("%H:%M:%S")
                if printer.as_json:
                    print(json.dumps({"at": stamp, **status}, sort_keys=True, default=str), flush=True)
                else:
                    print(f"{stamp} {status_block(status)}", flush=True)
            if status["status"] != RUNNING:
                return _exit_for(status)
            sleep(interval)
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return EXIT_INTERRUPTED


# -- approval, abort, unlock -------------------------------------------------------------------------
def _running(ledger: Ledger, service: str) -> RolloutRecord:
    record = ledger.latest_rollout(service)
    if record is None or record.status != RUNNING:
        raise CliError(f"no rollout of {service} is running", EXIT_NOT_FOUND)
    return record


def approve_rollout(args: argparse.Namespace, printer: Printer) -> int:
    check_names(args.service)
    env = Environment(args.env, args.region)
    record = _ledger(env).latest_rollout(args.service)
    if record is None or record.status != RUNNING or not record.awaiting_approval:
        raise CliError(f"no rollout of {args.service} is waiting for approval", EXIT_NOT_FOUND)
    sfn = env.client("stepfunctions")
    if args.reject:
        sfn.send_task_failure(taskToken=record.approval_token, error="Rejected", cause=args.reject)
        printer.result({"service": args.service, "approved": False}, f"rejected {args.service} {record.version}")
    else:
        sfn.send_task_success(taskToken=record.approval_token, output="{}")
        printer.result({"service": args.service, "approved": True}, f"approved {args.service} {record.version}")
    return EXIT_OK


def abort_rollout(args: argparse.Namespace, printer: Printer) -> int:
    """Signal the running rollout to stop; it rolls back inside its own state machine."""
    check_names(args.service)
    env = Environment(args.env, args.region)
    ledger = _ledger(env)
    record = _running(ledger, args.service)
    who = _caller(env)
    if not ledger.locks.request_abort(args.service, execution=record.execution, reason=args.reason, by=who):
        raise CliError(f"the rollout of {args.service} no longer holds its lock: nothing to abort", EXIT_NOT_FOUND)
    if record.awaiting_approval:
        sfn = env.client("stepfunctions")
        # If the approval is over already, the next step sees the abort request instead.
        with contextlib.suppress(
            sfn.exceptions.TaskDoesNotExist, sfn.exceptions.TaskTimedOut, sfn.exceptions.InvalidToken
        ):
            sfn.send_task_failure(taskToken=record.approval_token, error="AbortRequestedError", cause=args.reason)
    if args.no_wait:
        printer.result({"service": args.service, "abort_requested": True}, f"abort of {args.service} requested")
        return EXIT_OK
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        status = describe(env, ledger, args.service)
        if status["status"] != RUNNING:
            printer.result(status, status_block(status))
            return EXIT_OK if status["status"] == ABORTED else EXIT_REJECTED
        time.sleep(2)
    raise CliError(f"{args.service} was still rolling back after {args.timeout:g} s", EXIT_REJECTED)


def unlock_service(args: argparse.Namespace, printer: Printer) -> int:
    check_names(args.service)
    if not args.force:
        raise CliError("unlock needs --force: it frees the service whatever state it is in", EXIT_USAGE)
    env = Environment(args.env, args.region)
    ledger = _ledger(env)
    holder = ledger.locks.holder(args.service)
    if holder is None:
        raise CliError(f"{args.service} is not locked", EXIT_NOT_FOUND)
    refusal = unlock_refusal(env.client("stepfunctions"), ledger, args.service, holder, datetime.now(UTC))
    if refusal is not None:
        raise CliError(refusal, EXIT_REJECTED)
    if not args.yes:
        # The prompt goes to stderr: stdout carries only the result (and --json's document).
        print(
            f"{args.service} is locked by {holder['execution']} (version {holder.get('version')}). "
            "Type the service name to free it: ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        answer = sys.stdin.readline()
        if answer.strip() != args.service:
            raise CliError("not confirmed; nothing changed", EXIT_REJECTED)
    who = _caller(env)
    if ledger.locks.force_unlock(args.service) is None:
        raise CliError(f"the lock of {args.service} changed while unlocking; look again", EXIT_REJECTED)
    unlocked = AuditEntry(kind=AuditKind.FORCED_UNLOCK, at=datetime.now(UTC).isoformat(), details={"by": who})
    ledger.append_to_record(args.service, holder["record"], unlocked)
    printer.result(
        {"service": args.service, "unlocked": True, "was_held_by": holder["execution"], "by": who},
        f"unlocked {args.service} (was held by {holder['execution']}); recorded as done by {who}",
    )
    return EXIT_OK


def unlock_refusal(stepfunctions: Any, ledger: Ledger, service: str, holder: dict, now: datetime) -> str | None:
    """Why a forced unlock must wait (None: it may go ahead). Freeing a lock under a rollout that still acts would let
    its next write land on a service nobody guards, and freeing one the safety net has yet to settle would leave the
    service as the stopped rollout left it: refused while the holder's execution runs, and while a stopped one's
    record is not final, until the safety net has had every chance (its events are delivered for
    SAFETY_NET_MAX_EVENT_AGE_SECONDS; after that, its dead-letter queue says why). An operator's hold is what unlock
    is for."""
    if holder.get("operator"):
        return None
    described = stepfunctions.describe_execution(executionArn=holder["execution"])
    if described["status"] == RUNNING:
        return (
            f"{service} is locked by a running rollout ({holder['execution']}); stop it with "
            f"`tessera rollout abort {service}`, which rolls it back and frees the lock"
        )
    record = ledger.record(service, holder["record"])
    stopped = described.get("stopDate") or now
    settling_until = stopped + timedelta(seconds=SAFETY_NET_MAX_EVENT_AGE_SECONDS + QUIESCENCE_SECONDS)
    if record is not None and record.status == RUNNING and now < settling_until:
        return (
            f"{service}'s rollout stopped at {stopped.isoformat()} and the safety net settles it (the lock frees "
            f"then); if it has not by {settling_until.isoformat()}, read the safety net's dead-letter queue"
        )
    quiet = holder.get("quiescent_after")
    if quiet and now < datetime.fromisoformat(quiet):
        return f"{service}'s rollout stopped and is being settled by the safety net until {quiet}; the lock frees then"
    return None


def _caller(env: Environment) -> str:
    return env.client("sts").get_caller_identity()["Arn"]


def _last_costs(ledger: Ledger, record: RolloutRecord) -> dict | None:
    """Each track's cost per million requests and target at the rollout's last judgement (None: never judged)."""
    judgement = _last_judgement(ledger, record)
    if judgement is None:
        return None
    return {track: _pick(_with_cost(judgement.details.get(track))) for track in TRACKS}


def _pick(figures: dict | None) -> dict:
    return {key: (figures or {}).get(key) for key in ("target", "cost_per_million_requests")}


def _history_line(row: dict) -> str:
    line = f"{row['started_at']}  {row['version']:<20} {row['status']:<14} {row['reason'] or ''}".rstrip()
    costs = row["cost_per_million_requests"]
    if costs:
        line += f"  (last judgement: {cost_text(costs['canary'], costs['stable'])})"
    return line


def _history_row(ledger: Ledger, record: RolloutRecord, *, trail: bool) -> dict:
    row: dict[str, Any] = {
        "version": record.version,
        "status": record.status,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "reason": record.reason or None,
        "cost_per_million_requests": _last_costs(ledger, record),
    }
    if trail:  # every entry (a query for the steps' weights and one for the judgements), only for --json's output
        row["decisions"] = [entry.to_json() for entry in ledger.audit_trail(record)]
    return row


def show_history(args: argparse.Namespace, printer: Printer) -> int:
    check_names(args.service)
    env = Environment(args.env, args.region)
    known_service(env, args.service)
    ledger = _ledger(env)
    rows = [_history_row(ledger, record, trail=printer.as_json) for record in reversed(ledger.rollouts(args.service))]
    human = "\n".join(_history_line(row) for row in rows)
    printer.result({"service": args.service, "rollouts": rows}, human or f"{args.service} has never been rolled out")
    return EXIT_OK
