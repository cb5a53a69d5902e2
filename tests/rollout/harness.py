"""End-to-end world for rollouts: moto (DynamoDB, ELBv2, CloudWatch, SNS, SSM, Step Functions
executing for real), the Kubernetes API test double, and the rollout Lambda's tasks dispatched to
the real handler code in this process.

Load balancer metrics exist only when requests flow, so a `TrafficDouble` plays the clients: minute by
minute it lands the requests, errors and latency the scenario gives each track (the canary only while it
has weight), a minute late as CloudWatch does; before each task it catches up to the clock. moto's
CloudWatch cannot serve percentiles, so p99 comes from the same double through the metric reader's
percentile seam.

moto runs Wait states in real time; `ClockDouble` replaces that: a Wait state advances the double's
clock by its seconds at once, and the steps, the ledger and the traffic double all read that clock.
Notifications are counted on an SQS queue subscribed to the rollout topic.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
from botocore.credentials import Credentials
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

from registry.store import RegistryStore, VersionRecord
from rollout.clients import Clients
from rollout.contract import RuntimeMetrics, ServiceSettings
from rollout.handler import dispatch
from rollout.kube.client import KubeClient
from rollout.ledger import Ledger
from rollout.metrics import arn_dimension
from rollout.prometheus import SigV4Prometheus
from stacks.config.environment import EnvironmentConfig
from stacks.observability.names import service_alarm_names
from stacks.rollout.settings import PrometheusEndpoint, RoutingArns, rollout_settings
from tessera_shared import constants as shared
from tests.fake_aws import create_registry_table
from tests.registry.world import image_manifest
from tests.rollout.kube_double import KubernetesApiDouble
from tests.rollout.prometheus_double import PrometheusApiDouble, RuntimeMinute, ServingRuntimeDouble

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE = "tessera-dev-model-registry"
SETTINGS_PREFIX = "/tessera/dev/rollout/services/"
NAMESPACE = "inference"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tessera-dev-rollout"
STABLE_VERSION = "2026-11-01"
NEW_VERSION = "2026-11-20"
STABLE_REPLICAS = 2
# Waits are instant (ClockDouble), so the service's policy can keep realistic durations, only shorter than a real
# service's: the settings the world writes carry them, since a rollout's overrides may only tighten a policy.
FAST_POLICY = {"poll_seconds": 10, "warmup_seconds": 60, "bake_seconds": 120, "ready_timeout_seconds": 120}
CLUSTER = "tessera-dev"


class ClockDouble:
    """Test double of time for the rollout: starts at a fixed second of the current minute (so windows fall
    the same way on every run), moves only when a Wait state waits."""

    def __init__(self) -> None:
        self._now = datetime.now(UTC).replace(second=17, microsecond=0)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def make_waits_instant(clock: ClockDouble, monkeypatch: Any) -> None:
    """moto's Wait states and retry intervals advance the clock double instead of sleeping."""

    def wait(self: WaitFunction, env: Any, wait_seconds: int) -> None:
        clock.advance(wait_seconds)
        time.sleep(0.001)  # let the test thread look in between

    monkeypatch.setattr(WaitFunction, "_wait_interval", wait)
    monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=clock.advance))


@dataclass
class SettleDouble:
    """Test double of the settle queue (rollout.clients.SqsSettleScheduler): keeps each second pass the safety net
    schedules with the moment it is due; tests deliver the due ones (`due`) as the queue's event source would."""

    pending: list[tuple[datetime, dict]] = field(default_factory=list)

    def later(self, message: dict, *, not_before: datetime) -> None:
        self.pending.append((not_before, message))

    def due(self, now: datetime) -> list[dict]:
        ready = [message for moment, message in self.pending if moment <= now]
        self.pending = [(moment, message) for moment, message in self.pending if moment > now]
        return ready


def settle_event(message: dict) -> dict:
    """A settle-queue message as Lambda's SQS event source delivers it (batch size 1)."""
    return {"Records": [{"eventSource": "aws:sqs", "messageId": "m-1", "body": json.dumps(message)}]}


class LambdaTimeoutDouble(Exception):  # noqa: N818 - named after what it stands for
    """A task whose Lambda ran out of time: Step Functions reports Lambda.Unknown."""

    error_type = "Lambda.Unknown"


class LambdaThrottledDouble(Exception):  # noqa: N818
    """Lambda refused the invocation (too many concurrent executions)."""

    error_type = "Lambda.TooManyRequestsException"


@dataclass(frozen=True)
class After:
    """A fault that strikes after the action did its work (a timeout just before it could answer)."""

    error: Exception


@dataclass
class TrackTraffic:
    """What one track's clients see in a minute."""

    requests: int = 1000
    errors_5xx: int = 0
    p99_seconds: float = 0.8
    connection_errors: int = 0
    # What the serving runtime measures of the same requests (its Prometheus metrics; prometheus_double).
    ttft_seconds: float = 0.4  # median time to first token
    tpot_seconds: float = 0.03  # median time per output token
    output_tokens: int = 200  # per request
    runtime_errors: int = 0
    runtime_requests: int | None = None  # requests the runtime measured; None: every request

    def runtime_minute(self) -> RuntimeMinute:
        measured = self.requests if self.runtime_requests is None else self.runtime_requests
        return RuntimeMinute(measured, self.ttft_seconds, self.tpot_seconds, self.output_tokens, self.runtime_errors)


MINUTE = timedelta(minutes=1)


@dataclass
class TrafficDouble:
    """Test double of real users and of the load balancer's metrics: every minute that traffic flows, each
    track's figures land in CloudWatch as one datapoint per metric (timestamped at the minute's start), but
    only `publish_delay_seconds` after the minute ended, as CloudWatch's load balancer metrics do. A
    regression injected with `change_at` applies from its moment on; a minute it starts in blends both
    figures by the share of the minute each covers."""

    cloudwatch: Any
    load_balancer: str
    target_groups: dict[str, str]  # track -> target group dimension
    clock: Callable[[], datetime]
    canary: TrackTraffic = field(default_factory=TrackTraffic)
    stable: TrackTraffic = field(default_factory=TrackTraffic)
    silent: bool = False  # a canary that gets no requests at all
    # Custom metrics the servers publish per track (namespace Tessera, dimension Track): name -> track -> value.
    extra: dict[str, dict[str, float]] = field(default_factory=dict)
    publish_delay_seconds: int = 60
    runtime: ServingRuntimeDouble | None = None  # the serving runtime's Prometheus series of the same requests
    changes: list[tuple[datetime, str, TrackTraffic]] = field(default_factory=list)
    published: dict[str, list[tuple[datetime, TrackTraffic]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._next_minute = self.clock().replace(second=0, microsecond=0)  # the first minute not yet landed

    def change_at(self, moment: datetime, track: str, traffic: TrackTraffic) -> None:
        """From `moment` on, `track`'s clients see `traffic`."""
        self.changes.append((moment, track, traffic))
        self.changes.sort(key=lambda change: change[0])

    def go_quiet_until(self, moment: datetime) -> None:
        """No datapoints for the minutes before `moment`: for a test that jumps the clock by days and judges
        nothing in between (landing them would only cost time)."""
        self._next_minute = max(self._next_minute, moment.replace(second=0, microsecond=0))

    def publish(self, canary_weight: int) -> None:
        """Land every minute whose publishing delay has passed; the canary gets traffic at a weight above 0."""
        now = self.clock()
        batches: dict[str, list[dict]] = {}  # namespace -> datapoints: a clock that jumped days lands in few calls
        while self._next_minute + MINUTE + timedelta(seconds=self.publish_delay_seconds) <= now:
            minute = self._next_minute
            for track in ("canary", "stable"):
                if track == "canary" and (self.silent or canary_weight == 0):
                    continue
                self._emit(track, minute, self.figures(track, minute), batches)
            self._next_minute += MINUTE
        for namespace, data in batches.items():
            for first in range(0, len(data), 1000):  # PutMetricData takes at most 1000 datapoints
                self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[first : first + 1000])

    def figures(self, track: str, minute: datetime) -> TrackTraffic:
        """The track's figures over [minute, minute + 1 min)."""
        base = self.canary if track == "canary" else self.stable
        points = [(at, traffic) for at, name, traffic in self.changes if name == track]
        segments: list[tuple[float, TrackTraffic]] = []
        current, since = base, minute
        for at, traffic in points:
            if at <= minute:
                current = traffic
            elif at < minute + MINUTE:
                segments.append(((at - since) / MINUTE, current))
                current, since = traffic, at
        segments.append(((minute + MINUTE - since) / MINUTE, current))
        return TrackTraffic(
            requests=round(sum(share * t.requests for share, t in segments)),
            errors_5xx=round(sum(share * t.errors_5xx for share, t in segments)),
            connection_errors=round(sum(share * t.connection_errors for share, t in segments)),
            # A p99 is set by the slowest 1 %: a part covering more than that of the minute sets it.
            p99_seconds=max(t.p99_seconds for share, t in segments if share > 0.01),
            # The runtime's latencies as cautiously: the slower part's for the whole minute.
            ttft_seconds=max(t.ttft_seconds for share, t in segments if share > 0.01),
            tpot_seconds=max(t.tpot_seconds for share, t in segments if share > 0.01),
            output_tokens=round(sum(share * t.output_tokens for share, t in segments)),
            runtime_errors=round(sum(share * t.runtime_errors for share, t in segments)),
            runtime_requests=round(sum(share * t.runtime_minute().requests for share, t in segments)),
        )

    def _emit(self, track: str, minute: datetime, traffic: TrackTraffic, batches: dict[str, list[dict]]) -> None:
        self.published.setdefault(track, []).append((minute, traffic))
        if self.runtime is not None:
            self.runtime.observe(track, minute + MINUTE, traffic.runtime_minute())
        for name, values in self.extra.items():
            batches.setdefault("Tessera", []).append(
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": "Track", "Value": track}],
                    "Value": values[track],
                    "Timestamp": minute,
                }
            )
        dimensions = [
            {"Name": "LoadBalancer", "Value": self.load_balancer},
            {"Name": "TargetGroup", "Value": self.target_groups[track]},
        ]
        counts = {
            "RequestCount": traffic.requests,
            "HTTPCode_Target_5XX_Count": traffic.errors_5xx,
            "TargetConnectionErrorCount": traffic.connection_errors,
        }
        batches.setdefault("AWS/ApplicationELB", []).extend(
            {"MetricName": name, "Dimensions": dimensions, "Value": value, "Timestamp": minute}
            for name, value in counts.items()
        )

    def p99(
        self, *, namespace: str, metric_name: str, dimensions: dict, start: datetime, end: datetime
    ) -> float | None:
        """The percentile seam of the metric reader: the highest p99 of the minutes published in the window."""
        track = next(name for name, dim in self.target_groups.items() if dimensions.get("TargetGroup") == dim)
        first = start.replace(second=0, microsecond=0)
        values = [traffic.p99_seconds for minute, traffic in self.published.get(track, []) if first <= minute < end]
        return max(values) if values else None


@dataclass
class RolloutWorld:
    config: EnvironmentConfig
    kube: KubernetesApiDouble
    clock: ClockDouble = field(default_factory=ClockDouble)
    # The allowed target (pool) the registry recorded each version fits; unset: none recorded.
    version_pools: dict[str, str] = field(default_factory=dict)
    settle: SettleDouble = field(default_factory=SettleDouble)
    clients: Clients = field(init=False)
    traffic: TrafficDouble = field(init=False)
    prometheus: PrometheusApiDouble = field(init=False)  # the environment's workspace, as the judge queries it
    settings: ServiceSettings = field(init=False)  # the service's rollout settings, as in SSM
    dispatched: list[str] = field(default_factory=list)  # every task started, in order
    completed: list[str] = field(default_factory=list)  # every task that returned, in order
    faults: dict[str, list[Exception | After]] = field(default_factory=dict)  # action -> faults, in turn
    paused_at: str | None = None  # an action that waits for resume() before it runs
    _resume: threading.Event = field(default_factory=threading.Event)
    _paused: threading.Event = field(default_factory=threading.Event)

    def build(self) -> RolloutWorld:
        self.invoke_action = self.invoke  # what the Lambda runs; fault injection wraps it
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.dynamodb = dynamodb
        create_registry_table(dynamodb, TABLE)
        store = RegistryStore(dynamodb, TABLE, clock=self.clock)
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_repository(repositoryName="tessera/dev/assistant", imageTagMutability="IMMUTABLE")
        self.image_digests = {}
        for version, state in ((STABLE_VERSION, "PROMOTED"), (NEW_VERSION, "REGISTERED")):
            pushed = ecr.put_image(
                repositoryName="tessera/dev/assistant", imageManifest=image_manifest(version), imageTag=f"img-{version}"
            )
            self.image_digests[version] = pushed["image"]["imageId"]["imageDigest"]
            store.create_version(
                VersionRecord(
                    service="assistant",
                    version=version,
                    state=state,
                    digest=version,
                    image=f"tessera/dev/assistant:img-{version}",
                    image_digest=self.image_digests[version],
                    pool=self.version_pools.get(version),
                ),
                {"kind": state.lower(), "at": "2026-11-20T00:00:00.000+00:00", "state": state, "reasons": []},
            )
        ledger = Ledger(dynamodb, TABLE, clock=self.clock)
        ledger.set_pointer("assistant", stable=STABLE_VERSION, canary=None)

        routing = self._load_balancer()
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="tessera-dev-rollouts")["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        self.notice_queue = sqs.create_queue(QueueName="rollout-notices")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.notice_queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        ssm = boto3.client("ssm", region_name=REGION)
        assistant = next(placed for placed in self.config.placed_services if placed.name == "assistant")
        self.prometheus = PrometheusApiDouble(region=REGION)
        self.settings = rollout_settings(
            assistant,
            environment="dev",
            routing=routing,
            image_registry=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com",
            model_bucket="models-bucket",
            prometheus=PrometheusEndpoint(endpoint=self.prometheus.endpoint, region=REGION),
        )

        self.kube.add_deployment(
            NAMESPACE,
            "assistant-stable",
            replicas=STABLE_REPLICAS,
            image=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tessera/dev/assistant:img-{STABLE_VERSION}",
            env={
                "MODEL_VERSION": STABLE_VERSION,
                "MODEL_S3_URI": f"s3://models-bucket/models/assistant/{STABLE_VERSION}/",
            },
        )
        # The stable autoscaler the service's config renders: a KEDA ScaledObject for a service with `scaling`.
        add_scaler = self.kube.add_scaled_object if assistant.spec.scaling else self.kube.add_autoscaler
        add_scaler(NAMESPACE, "assistant-stable", min_replicas=1, max_replicas=6)
        self.kube.add_deployment(NAMESPACE, "assistant-canary", replicas=0, env={"MODEL_VERSION": STABLE_VERSION})
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        # The service's composite alarm, which the Observability stack makes and the rollout watches by default.
        # moto 5.2 does not implement PutCompositeAlarm: a metric alarm of the same name stands in (the rollout
        # reads only an alarm's name and state, DescribeAlarms asked for both types).
        self.service_alarm = service_alarm_names("dev", "assistant").composite
        cloudwatch.put_metric_alarm(
            AlarmName=self.service_alarm,
            Namespace="Tessera/Test",
            MetricName="stand-in",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
        self.traffic = TrafficDouble(
            cloudwatch=cloudwatch,
            load_balancer=arn_dimension(routing.load_balancer),
            target_groups={
                "stable": arn_dimension(routing.stable_target_group),
                "canary": arn_dimension(routing.canary_target_group),
            },
            clock=self.clock,
            runtime=ServingRuntimeDouble(
                self.prometheus, namespace=NAMESPACE, service="assistant", pods={"canary": 1, "stable": STABLE_REPLICAS}
            ),
        )
        self.clients = Clients(
            ledger=ledger,
            store=store,
            ecr=ecr,
            elbv2=boto3.client("elbv2", region_name=REGION),
            cloudwatch=cloudwatch,
            sns=sns,
            ssm=ssm,
            stepfunctions=boto3.client("stepfunctions", region_name=REGION),
            kube=KubeClient(self.kube.endpoint, lambda: "k8s-aws-v1.test-token"),
            percentiles=self.traffic,
            topic_arn=topic,
            settings_prefix=SETTINGS_PREFIX,
            cluster_name=CLUSTER,
            settle=self.settle,
            clock=self.clock,
            prometheus=lambda source: SigV4Prometheus(
                source,
                credentials=lambda: Credentials("AKIDDOUBLE", "double-secret", "double-token"),
                transport=self.prometheus,
            ),
        )
        self.routing = routing
        self.set_policy(**FAST_POLICY)
        return self

    def _load_balancer(self) -> RoutingArns:
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{index}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
                "SubnetId"
            ]
            for index, zone in enumerate("ab")
        ]
        elbv2 = boto3.client("elbv2", region_name=REGION)
        # Tagged as the Services stack tags them: Prepare checks the settings point at the service's own.
        lb = elbv2.create_load_balancer(
            Name="tessera-dev",
            Subnets=subnets,
            Scheme="internal",
            Type="application",
            Tags=tags({shared.LOAD_BALANCER_OWNER_TAG: CLUSTER}),
        )
        lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
        groups = {
            track: elbv2.create_target_group(
                Name=f"assistant-{track}",
                Protocol="HTTP",
                Port=8000,
                VpcId=vpc,
                TargetType="ip",
                Tags=tags(
                    {
                        shared.TARGET_GROUP_OWNER_TAG: CLUSTER,
                        shared.SERVICE_LABEL: "assistant",
                        shared.TRACK_LABEL: track,
                    }
                ),
            )["TargetGroups"][0]["TargetGroupArn"]
            for track in ("stable", "canary")
        }
        listener = elbv2.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
        )["Listeners"][0]["ListenerArn"]
        rule = elbv2.create_rule(
            ListenerArn=listener,
            Priority=10,
            Conditions=[{"Field": "path-pattern", "Values": ["/v1/assistant*"]}],
            Actions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": groups["stable"], "Weight": 100},
                            {"TargetGroupArn": groups["canary"], "Weight": 0},
                        ]
                    },
                }
            ],
            Tags=tags({shared.SERVICE_LABEL: "assistant"}),
        )["Rules"][0]["RuleArn"]
        return RoutingArns(
            rule=rule, stable_target_group=groups["stable"], canary_target_group=groups["canary"], load_balancer=lb_arn
        )

    def judge_runtime_metrics(self, query_url: str | None = None, *, declared: bool = True) -> None:
        """The service declares its serving runtime's metrics endpoint (`metrics` in config), or not: its settings
        name the environment's workspace (or `query_url`), so a rollout's canary is judged on the runtime's figures
        too; undeclared, on the load balancer's alone."""
        url = query_url or f"{self.prometheus.endpoint}api/v1/query"
        source = RuntimeMetrics(query_url=url, region=REGION) if declared else None
        self._write_settings(dataclasses.replace(self.settings, runtime_metrics=source))

    def set_policy(self, *, analysis: dict | None = None, **changes: object) -> None:
        """The service's config changes these policy fields (`analysis` for the analysis'), and the Rollout stack
        renders the settings again: what a rollout's overrides may only tighten."""
        policy = self.settings.policy
        policy = dataclasses.replace(policy, **changes, analysis=dataclasses.replace(policy.analysis, **analysis or {}))
        self._write_settings(dataclasses.replace(self.settings, policy=policy))

    def _write_settings(self, settings: ServiceSettings) -> None:
        self.settings = settings
        name = f"{SETTINGS_PREFIX}assistant"
        self.clients.ssm.put_parameter(Name=name, Value=json.dumps(settings.to_json()), Type="String", Overwrite=True)

    # -- the Lambda, as the state machine sees it ----------------------------------------------
    def invoke(self, event: dict) -> dict:
        """Run one task like Lambda would; afterwards play the parts that are not ours (users, the controller)."""
        action = event.get("action", "")
        if action == self.paused_at:
            self.paused_at = None
            self._paused.set()
            if not self._resume.wait(timeout=60):
                raise RuntimeError(f"{action} was never resumed")
        self.dispatched.append(action)
        self.traffic.publish(self.weights()[self.routing.canary_target_group])
        pending = self.faults.get(action)
        fault = pending.pop(0) if pending else None
        if isinstance(fault, Exception):
            raise fault
        result = dispatch(event, self.clients)
        if isinstance(fault, After):
            raise fault.error
        if action in ("deploy_canary", "scale_canary"):
            self.register_canary_targets(result["replicas"])
        self.completed.append(action)
        return result

    def pause_before(self, action: str) -> None:
        """The next task running `action` waits, before it runs, until resume()."""
        self._resume.clear()
        self._paused.clear()
        self.paused_at = action

    def wait_until_paused(self, timeout: float = 60.0) -> None:
        if not self._paused.wait(timeout):
            raise AssertionError("the rollout never reached the paused action")

    def resume(self) -> None:
        self._resume.set()

    def register_canary_targets(self, replicas: int) -> None:
        """What the load balancer controller does through the TargetGroupBinding."""
        elbv2 = self.clients.elbv2
        group = self.routing.canary_target_group
        present = [t["Target"] for t in elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]]
        if present:
            elbv2.deregister_targets(TargetGroupArn=group, Targets=present)
        if replicas:
            elbv2.register_targets(
                TargetGroupArn=group,
                Targets=[{"Id": f"10.40.0.{10 + index}", "Port": 8000} for index in range(replicas)],
            )

    def weights(self) -> dict[str, int]:
        [rule] = self.clients.elbv2.describe_rules(RuleArns=[self.routing.rule])["Rules"]
        return {g["TargetGroupArn"]: g["Weight"] for g in rule["Actions"][0]["ForwardConfig"]["TargetGroups"]}

    def canary_replicas(self) -> int:
        return self.kube.deployment(NAMESPACE, "assistant-canary")["spec"]["replicas"]

    def notices(self) -> list[dict]:
        """Every message published on the rollout topic so far (drains the queue)."""
        sqs = boto3.client("sqs", region_name=REGION)
        messages = []
        while batch := sqs.receive_message(QueueUrl=self.notice_queue, MaxNumberOfMessages=10).get("Messages", []):
            messages += [json.loads(message["Body"]) for message in batch]
            for message in batch:
                sqs.delete_message(QueueUrl=self.notice_queue, ReceiptHandle=message["ReceiptHandle"])
        return messages

    def deployed_image(self, track: str) -> str:
        return self.kube.deployment(NAMESPACE, f"assistant-{track}")["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]

    def deployed_version(self, track: str) -> str:
        container = self.kube.deployment(NAMESPACE, f"assistant-{track}")["spec"]["template"]["spec"]["containers"][0]
        return next(e["value"] for e in container["env"] if e["name"] == "MODEL_VERSION")


def tags(values: dict[str, str]) -> list[dict[str, str]]:
    """ELBv2's shape of tags."""
    return [{"Key": key, "Value": value} for key, value in values.items()]


def route_lambda_to(world: RolloutWorld, monkeypatch: Any) -> None:
    """moto's Step Functions invoke Lambda through moto; send those calls to the world's handler."""

    def invoke(
        self: LambdaSimpleBackend, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: dict
    ) -> bytes:
        try:
            return json.dumps(world.invoke_action(json.loads(body or "{}"))).encode()
        except Exception as error:
            response_headers["x-amz-function-error"] = "Unhandled"
            error_type = getattr(error, "error_type", type(error).__name__)
            return json.dumps({"errorType": error_type, "errorMessage": str(error)}).encode()

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)


def run_execution(
    sfn: Any, machine_arn: str, request: dict, *, timeout: float = 90.0, until: Callable[[dict], bool] | None = None
) -> dict:
    name = f"{request['service']}-{request['version']}-{time.monotonic_ns()}"
    execution = sfn.start_execution(stateMachineArn=machine_arn, name=name, input=json.dumps(request))["executionArn"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING" or (until and until(described)):
            return described
        time.sleep(0.2)
    raise AssertionError(f"execution {execution} still running after {timeout} s")
