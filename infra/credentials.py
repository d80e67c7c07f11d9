"""Credentials: a username and a Pulumi secret password, stored in AWS Secrets Manager.

The secret's value is JSON `{"username": ..., "password": ...}`; ECS task
definitions reference one key of it (`<arn>:password::`), so the password reaches
containers through `secrets`, never through plain environment variables or
task-definition text. The admin passwords come from stack config; the InfluxDB users
that are not admins get a generated one (`generated_password`), kept in the stack's
state: `pulumi up --replace <its URN>` rotates it, and InfluxDB applies the new one at
its next start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

PASSWORD_LENGTH = 32


@dataclass(frozen=True)
class CredentialArgs:
    """`password` must be a secret Output (from `pulumi config set --secret`, or generated)."""

    username: str
    password: pulumi.Output[str]
    description: str
    tags: Mapping[str, str]


class Credential(pulumi.ComponentResource):
    """A Secrets Manager secret holding one username and password.

    Outputs: `secret_arn`, `username`, `password` (secret), and `password_value_from`
    (the `valueFrom` for an ECS `secrets` entry that yields the password).
    """

    secret_arn: pulumi.Output[str]
    username: str
    password: pulumi.Output[str]
    password_value_from: pulumi.Output[str]

    def __init__(self, name: str, args: CredentialArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        # The type token keeps its first name: renaming it would replace every secret of a stack.
        super().__init__("loadbearing:infra:AdminCredential", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        secret = aws.secretsmanager.Secret(
            f"{name}-secret",
            description=args.description,
            # Short recovery window: a torn-down stack can be re-created under the same name soon.
            recovery_window_in_days=7,
            tags=dict(args.tags),
            opts=child,
        )
        value = _secret(args.password.apply(
            lambda pw: json.dumps({"username": args.username, "password": pw})))
        aws.secretsmanager.SecretVersion(
            f"{name}-value",
            secret_id=secret.id,
            secret_string=value,
            opts=child,
        )
        self.secret_arn = secret.arn
        self.username = args.username
        self.password = _secret(args.password)
        self.password_value_from = secret.arn.apply(lambda arn: f"{arn}:password::")
        self.register_outputs({"secret_arn": self.secret_arn, "password": self.password})


def _secret(value: pulumi.Output[str]) -> pulumi.Output[str]:
    """The same value, marked secret whether or not it already was."""
    return value.apply(lambda v: pulumi.Output.secret(v))


def generated_password(name: str) -> pulumi.Output[str]:
    """A random password (letters and digits only: it goes into InfluxQL and env files)."""
    password = random.RandomPassword(name, length=PASSWORD_LENGTH, special=False)
    return _secret(password.result)
