"""`tessera rollout ...`: start, watch, approve, abort and review model rollouts."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from rollout.ledger import Ledger
from tessera_cli.environment import Environment
from tessera_cli.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_REJECTED, EXIT_USAGE, CliError
from tessera_cli.output import Printer

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start rolling a registered version out")
    start.add_argument("service")
    start.add_argument("version")
    start.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="policy override for this rollout, e.g. bake_seconds=300 or steps=[5,25,50]",
    )
    start.set_defaults(run=start_rollout)
    status = commands.add_parser("status", help="the service's current (or last) rollout")
    status.add_argument("service")
    status.add_argument("--watch", action="store_true", help="refresh until the rollout ends")
    status.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes with --watch")
    status.set_defaults(run=show_status)
    approve = commands.add_parser("approve", help="let a rollout waiting for approval promote (or --reject it)")
    approve.add_argument("service")
    approve.add_argument("--reject", metavar="REASON", help="reject instead: the rollout rolls back")
    approve.set_defaults(run=approve_rollout)
    abort = commands.add_parser("abort", help="stop the running rollout and roll it back")
    abort.add_argument("service")
    abort.add_argument("--reason", default="aborted by an operator")
    abort.set_defaults(run=abort_rollout)
    history = commands.add_parser("history", help="the service's rollouts, newest first")
    history.add_argument("service")
    history.set_defaults(run=show_history)


def _ledger(env: Environment) -> Ledger:
    return Ledger(env.client("dynamodb"), env.parameter("artifacts/registry-table-name"))


def _parse_overrides(pairs: list[str]) -> dict:
    overrides: dict = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise CliError(f"--override {pair!r}: expected KEY=JSON", EXIT_USAGE)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            raise CliError(f"--override {pair!r}: {value!r} is not JSON", EXIT_USAGE) from None
    return overrides


def start_rollout(args: argparse.Namespace, printer: Printer) -> int:
    env = Environment(args.env, args.region)
    holder = _ledger(env).lock_holder(args.service)
    if holder:
        raise CliError(
            f"{args.service} is already being rolled out: version {holder['version']} by {holder['execution']}",
            EXIT_REJECTED,
        )
    request = {"service": args.service, "version": args.version, "overrides": _parse_overrides(args.override)}
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


def _latest(env: Environment, service: str) -> dict | None:
    records = sorted(_ledger(env).rollouts(service), key=lambda r: r["started_at"], reverse=True)
    return records[0] if records else None


def _describe(env: Environment, record: dict) -> dict:
    execution = env.client("stepfunctions").describe_execution(executionArn=record["execution"])
    decisions = record.get("decisions", [])
    last = decisions[-1] if decisions else {}
    return {
        "service": record["pk"].removeprefix("SERVICE#"),
        "version": record["version"],
        "execution": record["execution"],
        "execution_status": execution["status"],
        "rollout_status": record.get("status"),
        "started_at": record["started_at"],
        "steps": record.get("steps"),
        "last_decision": {k: v for k, v in last.items() if k != "task_token"},
        "decisions": len(decisions),
        "reason": record.get("reason"),
    }


def _status_line(status: dict) -> str:
    last = status["last_decision"]
    weight = f" at {last['canary_weight']}%" if "canary_weight" in last else ""
    verdict = f" {last['verdict']}" if last.get("verdict") else ""
    reason = f" ({status['reason']})" if status.get("reason") else ""
    return (
        f"{status['service']} {status['version']}: {status['rollout_status']} / {status['execution_status']}"
        f"{reason}; last step {last.get('step', '-')}{weight}{verdict}; {status['decisions']} decision(s)"
    )


def show_status(args: argparse.Namespace, printer: Printer) -> int:
    env = Environment(args.env, args.region)
    while True:
        record = _latest(env, args.service)
        if record is None:
            raise CliError(f"{args.service} has never been rolled out", EXIT_NOT_FOUND)
        status = _describe(env, record)
        printer.result(status, _status_line(status))
        if not args.watch or status["execution_status"] in TERMINAL:
            return EXIT_OK
        time.sleep(args.interval)


def approve_rollout(args: argparse.Namespace, printer: Printer) -> int:
    env = Environment(args.env, args.region)
    record = _latest(env, args.service)
    request = next((d for d in (record or {}).get("decisions", []) if d.get("id") == "approval-requested"), None)
    if record is None or record.get("status") != "RUNNING" or request is None:
        raise CliError(f"no rollout of {args.service} is waiting for approval", EXIT_NOT_FOUND)
    sfn = env.client("stepfunctions")
    if args.reject:
        sfn.send_task_failure(taskToken=request["task_token"], error="Rejected", cause=args.reject)
        printer.result({"service": args.service, "approved": False}, f"rejected {args.service} {record['version']}")
    else:
        sfn.send_task_success(taskToken=request["task_token"], output="{}")
        printer.result({"service": args.service, "approved": True}, f"approved {args.service} {record['version']}")
    return EXIT_OK


def abort_rollout(args: argparse.Namespace, printer: Printer) -> int:
    """Stop the execution, then run its rollback step directly (a stopped execution runs no more states)."""
    env = Environment(args.env, args.region)
    record = _latest(env, args.service)
    if record is None or record.get("status") != "RUNNING":
        raise CliError(f"no rollout of {args.service} is running", EXIT_NOT_FOUND)
    env.client("stepfunctions").stop_execution(executionArn=record["execution"], error="Aborted", cause=args.reason)
    payload = {
        "action": "rollback",
        "plan": record["plan"],
        "progress": {"deployed": True},
        "error": {"Error": "Aborted", "Cause": args.reason},
    }
    response = env.client("lambda").invoke(
        FunctionName=env.parameter("rollout/function-name"), Payload=json.dumps(payload).encode()
    )
    result = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise CliError(f"rollback failed: {result.get('errorMessage', result)}", EXIT_REJECTED)
    printer.result(result, f"aborted {args.service} {record['version']}: {result.get('status')}")
    return EXIT_OK


def show_history(args: argparse.Namespace, printer: Printer) -> int:
    env = Environment(args.env, args.region)
    records = sorted(_ledger(env).rollouts(args.service), key=lambda r: r["started_at"], reverse=True)
    rows = [
        {
            "version": r["version"],
            "status": r.get("status"),
            "started_at": r["started_at"],
            "finished_at": r.get("finished_at"),
            "reason": r.get("reason"),
            "decisions": [{k: v for k, v in d.items() if k != "task_token"} for d in r.get("decisions", [])],
        }
        for r in records
    ]
    human = "\n".join(
        f"{row['started_at']}  {row['version']:<20} {row['status']:<12} {row['reason'] or ''}" for row in rows
    )
    printer.result({"service": args.service, "rollouts": rows}, human or f"{args.service} has never been rolled out")
    return EXIT_OK
