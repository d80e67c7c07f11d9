"""What AWS failures say to the user: the quota or the permission, and what to do.

These build botocore's own ClientError objects (the exception boto3 raises) with AWS's
error codes and messages, and check the message the backend turns them into.
"""

from __future__ import annotations

from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from core.errors import BadInput, RunError
from runners.backends.ecs_errors import aws_error, describe_run_failures


def _client_error(code: str, message: str, operation: str = "RunTask") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_missing_pass_role_names_the_permission_and_the_role() -> None:
    exc = _client_error("AccessDeniedException", "User: arn:aws:iam::123456789012:user/ci is not authorized to "
                        "perform: iam:PassRole on resource: arn:aws:iam::123456789012:role/lb-task-execution")
    err = aws_error(exc, "ecs:RunTask", region="eu-west-1", what="runner api-0")
    assert isinstance(err, RunError) and err.exit_code == 4
    assert "needs the permission iam:PassRole on arn:aws:iam::123456789012:role/lb-task-execution" in err.message
    assert "execution and task roles" in err.message and "eu-west-1" in err.message


def test_access_denied_without_details_names_the_action() -> None:
    err = aws_error(_client_error("AccessDenied", "Access Denied", "PutObject"), "s3:PutObject",
                    region="us-east-1", what="s3://b/runs/r/api.tar")
    assert "needs the permission s3:PutObject" in err.message and "s3://b/runs/r/api.tar" in err.message


def test_spot_quota_and_capacity() -> None:
    err = aws_error(_client_error("LimitExceededException", "You've reached the limit on the number of vCPUs you "
                                  "can run concurrently"), "ecs:RunTask", region="us-west-2", quota=(True, 8, 2.0))
    assert "Fargate Spot vCPU resource count" in err.message and "L-36FBB829" in err.message
    assert "8 task(s) x 2 vCPU = 16 vCPU" in err.message
    text = describe_run_failures([{"arn": "x", "reason": "Capacity is unavailable at this time. Please try again "
                                   "later or in a different availability zone"}],
                                 runner="api-1", spot=True, region="us-west-2", tasks=8, vcpu=2.0)
    assert "runner api-1" in text and "LOADBEARING_ECS_SPOT=0" in text


def test_throttling_credentials_and_network() -> None:
    err = aws_error(_client_error("ThrottlingException", "Rate exceeded"), "ecs:RunTask", region="us-east-1")
    assert "RunTask: 20 calls/s" in err.message and isinstance(err, RunError)
    err = aws_error(_client_error("ExpiredTokenException", "The security token included in the request is expired"),
                    "ecs:DescribeTaskDefinition", region="us-east-1")
    assert isinstance(err, BadInput) and "aws sso login" in err.message
    err = aws_error(NoCredentialsError(), "ecs:DescribeTaskDefinition", region="us-east-1")
    assert isinstance(err, BadInput) and "AWS_PROFILE" in err.message
    err = aws_error(EndpointConnectionError(endpoint_url="https://ecs.us-east-1.amazonaws.com/"), "ecs:RunTask",
                    region="us-east-1")
    assert isinstance(err, RunError) and "could not reach AWS" in err.message
