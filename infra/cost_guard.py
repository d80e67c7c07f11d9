"""Cost guard: runner tasks cannot outlive `runnerMaxMinutes`; an optional AWS Budget.

An EventBridge Scheduler schedule invokes the `runner_reaper` Lambda every
`reaperIntervalMinutes`. It stops runner tasks older than `runnerMaxMinutes`, so a
task outlives the maximum by at most one interval, and it caps the runner tasks
running at once at `runnerCount`: the newest ones beyond it are stopped (the ecs
backend reads both limits from the stack outputs and refuses a plan beyond them). Its
IAM policy lets it stop only tasks tagged `loadbearing-component=runner` (RUNNER_TAG,
propagated from the runner task definition by RunTask), whatever its code does. With `budgetMonthlyUsd` set, an AWS Budget emails
`budgetEmails` at 80 % of actual and 100 % of forecast spend; with `budgetScope: stack`
it counts only resources tagged `loadbearing-stack=<stack>` (activate that cost
allocation tag in the Billing console first, or the budget sees nothing), with
`account` the whole account.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra import iam_documents
from infra.log_groups import log_group
from infra.runner_fleet import RUNNER_TAG

REAPER_SOURCE = Path(__file__).resolve().parent / "runner_reaper.py"
REAPER_RUNTIME = "python3.12"


@dataclass(frozen=True)
class BudgetArgs:
    """A monthly cost budget with email alerts."""

    monthly_usd: float
    emails: Sequence[str]
    scope: str  # "stack" (tag filter) or "account"
    stack: str


@dataclass(frozen=True)
class CostGuardArgs:
    """Which tasks to police (cluster + family), the limits, and the optional budget."""

    name_prefix: str
    tags: Mapping[str, str]
    cluster_arn: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    task_family: str
    max_minutes: int
    interval_minutes: int
    max_runners: int
    log_retention_days: int
    region: pulumi.Input[str]
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    budget: BudgetArgs | None = None


class CostGuard(pulumi.ComponentResource):
    """Outputs: `reaper_function_name`, `schedule_name`, `budget_name` (None without a budget)."""

    reaper_function_name: pulumi.Output[str]
    schedule_name: pulumi.Output[str]
    budget_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: CostGuardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("loadbearing:infra:CostGuard", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        function_name = f"{args.name_prefix}-runner-reaper"

        logs = log_group(name, args.name_prefix, "cost-guard", args.log_retention_days, tags, self)

        role = aws.iam.Role(
            f"{name}-reaper-role",
            assume_role_policy=iam_documents.assume_role("lambda.amazonaws.com"),
            description="loadbearing cost guard: stop overdue runner tasks",
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-reaper-policy",
            role=role.id,
            policy=pulumi.Output.all(
                cluster_arn=args.cluster_arn, cluster_name=args.cluster_name, region=args.region,
                account=args.account_id, partition=args.partition, log_group=logs.arn,
            ).apply(lambda v: iam_documents.document(
                {"Sid": "ListRunnerTasks", "Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*",
                 "Condition": {"ArnEquals": {"ecs:cluster": v["cluster_arn"]}}},
                {"Sid": "DescribeTasks", "Effect": "Allow", "Action": "ecs:DescribeTasks",
                 "Resource": f"arn:{v['partition']}:ecs:{v['region']}:{v['account']}:task/{v['cluster_name']}/*",
                 "Condition": {"ArnEquals": {"ecs:cluster": v["cluster_arn"]}}},
                # only runner tasks: the tag RunTask propagates from the runner task definition
                {"Sid": "StopRunnerTasks", "Effect": "Allow", "Action": "ecs:StopTask",
                 "Resource": f"arn:{v['partition']}:ecs:{v['region']}:{v['account']}:task/{v['cluster_name']}/*",
                 "Condition": {"ArnEquals": {"ecs:cluster": v["cluster_arn"]},
                               "StringEquals": {f"aws:ResourceTag/{RUNNER_TAG[0]}": RUNNER_TAG[1]}}},
                {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                 "Resource": f"{v['log_group']}:*"},
            )),
            opts=child,
        )
        function = aws.lambda_.Function(
            f"{name}-reaper",
            name=function_name,
            runtime=REAPER_RUNTIME,
            handler="runner_reaper.handler",
            code=pulumi.AssetArchive({"runner_reaper.py": pulumi.FileAsset(str(REAPER_SOURCE))}),
            role=role.arn,
            timeout=60,
            memory_size=128,
            environment={"variables": {
                "CLUSTER": args.cluster_arn,
                "TASK_FAMILY": args.task_family,
                "MAX_AGE_MINUTES": str(args.max_minutes),
                "MAX_RUNNERS": str(args.max_runners),
            }},
            logging_config={"log_format": "Text", "log_group": logs.name},
            tags=tags,
            opts=child,
        )

        scheduler_role = aws.iam.Role(
            f"{name}-scheduler-role",
            assume_role_policy=pulumi.Output.from_input(args.account_id).apply(lambda account: (
                iam_documents.document({
                    "Effect": "Allow",
                    "Principal": {"Service": "scheduler.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account}},
                }))),
            description="loadbearing cost guard: invoke the runner reaper",
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-scheduler-invoke",
            role=scheduler_role.id,
            policy=function.arn.apply(lambda arn: iam_documents.document(
                {"Sid": "InvokeReaper", "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": arn})),
            opts=child,
        )
        schedule = aws.scheduler.Schedule(
            f"{name}-schedule",
            name=f"{args.name_prefix}-runner-reaper",
            description=f"stop runner tasks older than {args.max_minutes} min",
            schedule_expression=f"rate({args.interval_minutes} minute{'s' if args.interval_minutes > 1 else ''})",
            flexible_time_window={"mode": "OFF"},
            target={"arn": function.arn, "role_arn": scheduler_role.arn,
                    "retry_policy": {"maximum_retry_attempts": 0}},
            opts=child,
        )

        self.reaper_function_name = function.name
        self.schedule_name = schedule.name
        self.budget_name = None
        if args.budget is not None:
            self.budget_name = self._budget(name, args, args.budget, tags, child).name
        self.register_outputs({"reaper_function_name": self.reaper_function_name,
                               "schedule_name": self.schedule_name})

    def _budget(self, name: str, args: CostGuardArgs, budget: BudgetArgs, tags: dict[str, str],
                child: pulumi.ResourceOptions) -> aws.budgets.Budget:
        filters = ([aws.budgets.BudgetCostFilterArgs(
            name="TagKeyValue", values=[f"user:loadbearing-stack${budget.stack}"])]
            if budget.scope == "stack" else [])
        emails = list(budget.emails)
        return aws.budgets.Budget(
            f"{name}-budget",
            name=f"{args.name_prefix}-monthly",
            budget_type="COST",
            limit_amount=f"{budget.monthly_usd:.2f}",
            limit_unit="USD",
            time_unit="MONTHLY",
            cost_filters=filters,
            notifications=[
                {"comparison_operator": "GREATER_THAN", "threshold": 80, "threshold_type": "PERCENTAGE",
                 "notification_type": "ACTUAL", "subscriber_email_addresses": emails},
                {"comparison_operator": "GREATER_THAN", "threshold": 100, "threshold_type": "PERCENTAGE",
                 "notification_type": "FORECASTED", "subscriber_email_addresses": emails},
            ],
            tags=tags,
            opts=child,
        )
