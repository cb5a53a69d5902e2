"""Services in stack groups: every service's per-service resources live in the stacks of its group, so that no
template grows past half of CloudFormation's quotas however many services an environment runs.

The `main` group's services stay in the Services and Observability stacks (where every service lived before groups
existed, so a deployed environment keeps its logical ids); each other group gets a `Services-<group>` and an
`Observability-<group>` stack. A service names its group in config: a group never changes because another service
was added or removed. Moving a deployed service to another group takes two deploys (without it, then with it in its
new group): in one, the new stack would create its listener rule and parameters while the old stack still holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

MAIN_STACK_GROUP = "main"
STACK_GROUP_PATTERN = r"^[a-z][a-z0-9]{0,11}$"
# A service adds about 34 KB, 17 resources and 10 outputs to its Services template and 53 KB to its Observability
# template (`make bench`, scale section); 8 keep both under half of the 1 MB, 500-resource and 200-output quotas.
SERVICES_PER_STACK_GROUP = 8


class Grouped(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def stack_group(self) -> str: ...


def stack_group_problems(services: Sequence[Grouped]) -> list[str]:
    """Each service past a group's first SERVICES_PER_STACK_GROUP, by its path."""
    seen: dict[str, list[str]] = {}
    problems = []
    for index, service in enumerate(services):
        members = seen.setdefault(service.stack_group, [])
        if len(members) == SERVICES_PER_STACK_GROUP:
            problems.append(
                f"services[{index}].stack_group: group {service.stack_group!r} already holds "
                f"{SERVICES_PER_STACK_GROUP} services ({', '.join(members)}); at most {SERVICES_PER_STACK_GROUP} per "
                "group keep each stack's template under half of CloudFormation's quotas: give this service another "
                "stack_group"
            )
        else:
            members.append(service.name)
    return problems


def group_stack_component(component: str, group: str) -> str:
    """The stack component of a group: `Services` for the main group, `Services-<group>` for another."""
    return component if group == MAIN_STACK_GROUP else f"{component}-{group}"
