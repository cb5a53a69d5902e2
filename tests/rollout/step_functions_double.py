"""StepFunctionsDouble: a TEST DOUBLE of AWS Step Functions for the rollout's synthesized definition, run one state
at a time so that a test decides what happens between any two states of any execution.

It is not Step Functions. It interprets the subset of the Amazon States Language the definition uses, with its
documented semantics: Task (a Lambda by ARN, or `lambda:invoke.waitForTaskToken` with a Payload, waiting for
`send_task_success`/`send_task_failure` or its TimeoutSecondsPath), Pass (Result, or Parameters with
`States.JsonToString`), Choice (StringEquals, BooleanEquals, Default), Wait (SecondsPath: the clock double moves),
Succeed and Fail (Error, CausePath); `.$` parameters from the state's input and the context object (`$$.Execution.Id`,
`$$.Task.Token`); ResultPath (null discards the result); Retry (ErrorEquals with `States.ALL`, MaxAttempts per
entry into the state; the interval moves the clock) and Catch (the error as `{"Error", "Cause"}`, where a Lambda
error's Cause is its JSON `{"errorType", "errorMessage"}`). A Lambda function's failure is named by the raised
exception's `error_type` attribute, else its class name, as tests/rollout/harness.route_lambda_to names it.

It also answers what the rollout code and the CLI ask Step Functions: describe_execution, stop_execution,
send_task_success, send_task_failure, and `exceptions.ExecutionDoesNotExist`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

RUNNING, SUCCEEDED, FAILED, ABORTED, TIMED_OUT = "RUNNING", "SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"
_JSON_TO_STRING = re.compile(r"^States\.JsonToString\((?P<path>\$[^)]*)\)$")


class ExecutionDoesNotExist(Exception):  # noqa: N818 - the name boto3 gives it
    pass


class TaskDoesNotExist(Exception):  # noqa: N818 - the name boto3 gives it
    pass


class _Exceptions:
    ExecutionDoesNotExist = ExecutionDoesNotExist
    TaskDoesNotExist = TaskDoesNotExist


@dataclass
class Execution:
    arn: str
    input: dict
    state: str
    data: Any
    started: datetime
    status: str = RUNNING
    stopped: datetime | None = None
    error: str | None = None
    cause: str | None = None
    attempts: dict[tuple[str, int], int] = field(default_factory=dict)  # (state, retrier) -> retries so far
    token: str | None = None  # a waitForTaskToken task waiting for its answer
    token_deadline: datetime | None = None
    tokens_issued: int = 0


class StepFunctionsDouble:
    """Executions of one definition; `invoke` runs a Lambda task's payload (raising its error) in-process."""

    exceptions = _Exceptions

    def __init__(self, definition: dict, *, invoke: Callable[[dict], Any], clock: Callable[[], datetime]) -> None:
        self._definition = definition
        self._invoke = invoke
        self._clock = clock
        self._advance = getattr(clock, "advance", None)
        self.executions: dict[str, Execution] = {}

    # -- the API the code under test calls -----------------------------------------------------------
    def start_execution(self, *, stateMachineArn: str, name: str, input: str) -> dict:  # noqa: N803 - boto3's
        arn = f"{stateMachineArn.replace(':stateMachine:', ':execution:')}:{name}"
        data = json.loads(input)
        self.executions[arn] = Execution(arn, data, self._definition["StartAt"], copy.deepcopy(data), self._clock())
        return {"executionArn": arn}

    def describe_execution(self, *, executionArn: str) -> dict:  # noqa: N803 - boto3's name
        execution = self._get(executionArn)
        described = {
            "executionArn": execution.arn,
            "stateMachineArn": execution.arn.rsplit(":", 1)[0].replace(":execution:", ":stateMachine:"),
            "name": execution.arn.rsplit(":", 1)[1],
            "status": execution.status,
            "startDate": execution.started,
            "input": json.dumps(execution.input),
        }
        if execution.stopped is not None:
            described["stopDate"] = execution.stopped
        if execution.error is not None:
            described |= {"error": execution.error, "cause": execution.cause or ""}
        return described

    def stop_execution(self, *, executionArn: str, **_: Any) -> dict:  # noqa: N803 - boto3's name
        execution = self._get(executionArn)
        if execution.status == RUNNING:
            self._end(execution, ABORTED)
        return {"stopDate": execution.stopped}

    def send_task_success(self, *, taskToken: str, output: str) -> None:  # noqa: N803 - boto3's name
        execution = self._waiting_on(taskToken)
        execution.token = None
        self._leave_task(execution, self._state(execution), json.loads(output))

    def send_task_failure(self, *, taskToken: str, error: str = "", cause: str = "") -> None:  # noqa: N803
        execution = self._waiting_on(taskToken)
        execution.token = None
        self._fail_task(execution, self._state(execution), error, cause)

    # -- what a test drives ------------------------------------------------------------------------------
    def step(self, arn: str) -> str | None:
        """Run the execution's current state; returns its name (None when the execution is over or waits for a
        task token)."""
        execution = self._get(arn)
        if execution.status != RUNNING:
            return None
        if execution.token is not None:
            if execution.token_deadline is not None and self._clock() >= execution.token_deadline:
                execution.token = None
                self._fail_task(execution, self._state(execution), "States.Timeout", "the task timed out")
                return execution.state
            return None
        name, state = execution.state, self._state(execution)
        getattr(self, f"_{state['Type'].lower()}")(execution, state)
        return name

    def next_task_event(self, arn: str) -> dict | None:
        """The payload the execution's current state would send to the function, if it is a Lambda task whose
        answer completes it (not a task that waits for a token)."""
        execution = self._get(arn)
        state = self._state(execution)
        if execution.status != RUNNING or execution.token is not None or state["Type"] != "Task":
            return None
        if state["Resource"].endswith(".waitForTaskToken"):
            return None
        return self._payload(execution, state, token=None)

    def complete_task(self, arn: str, result: Any = None, error: Exception | None = None) -> None:
        """Give the current Task state the answer of an invocation run outside `step` (a late one)."""
        execution = self._get(arn)
        if execution.status != RUNNING:
            return  # a stopped execution ignores what its invocations return
        state = self._state(execution)
        if error is None:
            self._leave_task(execution, state, result)
        else:
            self._fail_task(execution, state, _error_name(error), _lambda_cause(error))

    # -- states ----------------------------------------------------------------------------------------
    def _task(self, execution: Execution, state: dict) -> None:
        waits = state["Resource"].endswith(".waitForTaskToken")
        token = None
        if waits:
            execution.tokens_issued += 1
            token = f"{execution.arn}#token-{execution.tokens_issued}"
        try:
            result = self._invoke(self._payload(execution, state, token=token))
        except Exception as error:
            self._fail_task(execution, state, _error_name(error), _lambda_cause(error))
            return
        if waits:
            execution.token = token
            seconds = _path(execution.data, state["TimeoutSecondsPath"]) if "TimeoutSecondsPath" in state else None
            execution.token_deadline = self._clock() + timedelta(seconds=seconds) if seconds else None
            return
        self._leave_task(execution, state, result)

    def _pass(self, execution: Execution, state: dict) -> None:
        if "Parameters" in state:
            result = self._parameters(state["Parameters"], execution, token=None)
        else:
            result = copy.deepcopy(state.get("Result", execution.data))
        self._next(execution, state, result)

    def _choice(self, execution: Execution, state: dict) -> None:
        for choice in state["Choices"]:
            value = _path(execution.data, choice["Variable"], missing=_MISSING)
            for test in ("StringEquals", "BooleanEquals"):
                if test in choice and value == choice[test]:
                    execution.state = choice["Next"]
                    return
        execution.state = state["Default"]

    def _wait(self, execution: Execution, state: dict) -> None:
        self._sleep(_path(execution.data, state["SecondsPath"]))
        execution.state = state["Next"]

    def _succeed(self, execution: Execution, state: dict) -> None:
        self._end(execution, SUCCEEDED)

    def _fail(self, execution: Execution, state: dict) -> None:
        cause = _path(execution.data, state["CausePath"], missing="") if "CausePath" in state else ""
        self._end(execution, FAILED, error=state.get("Error"), cause=str(cause))

    # -- task outcomes ------------------------------------------------------------------------------
    def _leave_task(self, execution: Execution, state: dict, result: Any) -> None:
        execution.attempts = {key: n for key, n in execution.attempts.items() if key[0] != execution.state}
        self._next(execution, state, result)

    def _fail_task(self, execution: Execution, state: dict, error: str, cause: str) -> None:
        for index, retrier in enumerate(state.get("Retry", [])):
            if _matches(retrier["ErrorEquals"], error):
                key = (execution.state, index)
                done = execution.attempts.get(key, 0)
                if done < retrier.get("MaxAttempts", 3):
                    execution.attempts[key] = done + 1
                    self._sleep(retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** done)
                    return  # the same state runs again
                break
        for catcher in state.get("Catch", []):
            if _matches(catcher["ErrorEquals"], error):
                execution.attempts = {k: n for k, n in execution.attempts.items() if k[0] != execution.state}
                _set_path(execution, catcher.get("ResultPath", "$"), {"Error": error, "Cause": cause})
                execution.state = catcher["Next"]
                return
        self._end(execution, FAILED, error=error, cause=cause)

    def _next(self, execution: Execution, state: dict, result: Any) -> None:
        if "ResultPath" in state:
            if state["ResultPath"] is not None:
                _set_path(execution, state["ResultPath"], result)
        else:
            execution.data = result
        if state.get("End"):
            self._end(execution, SUCCEEDED)
        else:
            execution.state = state["Next"]

    def _end(self, execution: Execution, status: str, *, error: str | None = None, cause: str | None = None) -> None:
        execution.status, execution.stopped, execution.error, execution.cause = status, self._clock(), error, cause
        execution.token = None

    # -- helpers -------------------------------------------------------------------------------------
    def _payload(self, execution: Execution, state: dict, *, token: str | None) -> dict:
        parameters = state["Parameters"]
        template = parameters.get("Payload", parameters)
        return self._parameters(template, execution, token=token)

    def _parameters(self, template: Any, execution: Execution, *, token: str | None) -> Any:
        if isinstance(template, list):
            return [self._parameters(item, execution, token=token) for item in template]
        if not isinstance(template, dict):
            return template
        resolved = {}
        for key, value in template.items():
            if not key.endswith(".$"):
                resolved[key] = self._parameters(value, execution, token=token)
                continue
            resolved[key[:-2]] = self._dollar(value, execution, token)
        return resolved

    def _dollar(self, expression: str, execution: Execution, token: str | None) -> Any:
        if expression == "$$.Execution.Id":
            return execution.arn
        if expression == "$$.Task.Token":
            return token
        if match := _JSON_TO_STRING.match(expression):
            return json.dumps(_path(execution.data, match["path"]), separators=(",", ":"))
        return copy.deepcopy(_path(execution.data, expression))

    def _sleep(self, seconds: float) -> None:
        if self._advance is not None and seconds > 0:
            self._advance(seconds)

    def _state(self, execution: Execution) -> dict:
        return self._definition["States"][execution.state]

    def _get(self, arn: str) -> Execution:
        if arn not in self.executions:
            raise ExecutionDoesNotExist(arn)
        return self.executions[arn]

    def _waiting_on(self, token: str) -> Execution:
        for execution in self.executions.values():
            if execution.token == token and execution.status == RUNNING:
                return execution
        raise TaskDoesNotExist(token)


_MISSING = object()


def _error_name(error: Exception) -> str:
    return getattr(error, "error_type", type(error).__name__)


def _lambda_cause(error: Exception) -> str:
    return json.dumps({"errorType": _error_name(error), "errorMessage": str(error)})


def _matches(names: list[str], error: str) -> bool:
    return error in names or ("States.ALL" in names and not error.startswith("States.Runtime"))


def _path(data: Any, path: str, *, missing: Any = None) -> Any:
    current = data
    for part in [p for p in path.removeprefix("$").split(".") if p]:
        if not isinstance(current, dict) or part not in current:
            return missing
        current = current[part]
    return current


def _set_path(execution: Execution, path: str, value: Any) -> None:
    parts = [p for p in path.removeprefix("$").split(".") if p]
    if not parts:
        execution.data = copy.deepcopy(value)
        return
    current = execution.data
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = copy.deepcopy(value)
