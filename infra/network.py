"""Network: a new VPC (public + private subnets in two AZs, NAT) or an existing one.

Also the private DNS namespace for service discovery (InfluxDB's internal name).
Private subnets hold every task; public subnets hold the ALB and the NAT gateway(s).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import ExistingNetwork

AZ_COUNT = 2
# Interface endpoints in the private subnets, so that tasks start without the NAT gateway: image
# pulls from ECR (api, dkr), their logs, their secrets. S3 (ECR's image layers, k6 archives) is a
# gateway endpoint on every route table, at no charge.
ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")


@dataclass(frozen=True)
class NetworkArgs:
    """A new VPC from `vpc_cidr` with `nat_gateways` (1 or 2), or `existing` as given."""

    name_prefix: str
    tags: Mapping[str, str]
    vpc_cidr: str = "10.42.0.0/16"
    nat_gateways: int = 1
    existing: ExistingNetwork | None = None
    region: pulumi.Input[str] = "us-east-1"
    endpoints: bool = True    # a new VPC's endpoints for what tasks need to start (ENDPOINT_SERVICES)


def subnet_cidrs(vpc_cidr: str) -> tuple[list[str], list[str]]:
    """Split the VPC block in four: two public subnets, then two private ones."""
    quarters = [str(n) for n in ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=2)]
    return quarters[:AZ_COUNT], quarters[AZ_COUNT:]


class Network(pulumi.ComponentResource):
    """VPC, subnets, routing and the service-discovery namespace.

    Outputs: `vpc_id`, `public_subnet_ids` and `private_subnet_ids` (Python lists of
    Outputs, one per AZ, so callers can create one resource per subnet),
    `namespace_id` and `namespace_name` (private DNS, e.g. `loadbearing-dev.internal`).
    """

    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    namespace_id: pulumi.Output[str]
    namespace_name: str

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("loadbearing:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        if args.existing is not None:
            self.vpc_id = pulumi.Output.from_input(args.existing.vpc_id)
            self.public_subnet_ids = [pulumi.Output.from_input(s) for s in args.existing.public_subnet_ids]
            self.private_subnet_ids = [pulumi.Output.from_input(s) for s in args.existing.private_subnet_ids]
        else:
            self._create_vpc(name, args, tags, child)

        self.namespace_name = f"{args.name_prefix}.internal"
        namespace = aws.servicediscovery.PrivateDnsNamespace(
            f"{name}-namespace",
            name=self.namespace_name,
            description="loadbearing service discovery (InfluxDB)",
            vpc=self.vpc_id,
            tags=tags,
            opts=child,
        )
        self.namespace_id = namespace.id

        self.register_outputs({
            "vpc_id": self.vpc_id,
            "public_subnet_ids": self.public_subnet_ids,
            "private_subnet_ids": self.private_subnet_ids,
            "namespace_id": self.namespace_id,
        })

    def _create_vpc(self, name: str, args: NetworkArgs, tags: dict[str, str],
                    child: pulumi.ResourceOptions) -> None:
        azs = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(parent=self))
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": args.name_prefix},
            opts=child,
        )
        self.vpc_id = vpc.id
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child)
        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags=tags, opts=child)
        aws.ec2.Route(f"{name}-public-default", route_table_id=public_rt.id,
                      destination_cidr_block="0.0.0.0/0", gateway_id=igw.id, opts=child)

        public_cidrs, private_cidrs = subnet_cidrs(args.vpc_cidr)
        public: list[aws.ec2.Subnet] = []
        private: list[aws.ec2.Subnet] = []
        for i in range(AZ_COUNT):
            az = azs.names[i]
            public.append(aws.ec2.Subnet(
                f"{name}-public-subnet-{i}", vpc_id=vpc.id, cidr_block=public_cidrs[i], availability_zone=az,
                map_public_ip_on_launch=False, tags={**tags, "Name": f"{args.name_prefix}-public-{i}"},
                opts=child))
            private.append(aws.ec2.Subnet(
                f"{name}-private-subnet-{i}", vpc_id=vpc.id, cidr_block=private_cidrs[i], availability_zone=az,
                tags={**tags, "Name": f"{args.name_prefix}-private-{i}"}, opts=child))
            aws.ec2.RouteTableAssociation(f"{name}-public-rta-{i}", subnet_id=public[i].id,
                                          route_table_id=public_rt.id, opts=child)

        nats = []
        for i in range(args.nat_gateways):
            eip = aws.ec2.Eip(f"{name}-nat-eip-{i}", domain="vpc", tags=tags, opts=child)
            nats.append(aws.ec2.NatGateway(
                f"{name}-nat-{i}", allocation_id=eip.id, subnet_id=public[i].id, tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw])))
        private_rts = []
        for i in range(AZ_COUNT):
            rt = aws.ec2.RouteTable(f"{name}-private-rt-{i}", vpc_id=vpc.id, tags=tags, opts=child)
            private_rts.append(rt)
            aws.ec2.Route(f"{name}-private-{i}-default", route_table_id=rt.id,
                          destination_cidr_block="0.0.0.0/0", nat_gateway_id=nats[i % len(nats)].id,
                          opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-rta-{i}", subnet_id=private[i].id,
                                          route_table_id=rt.id, opts=child)

        self.public_subnet_ids = [s.id for s in public]
        self.private_subnet_ids = [s.id for s in private]
        if args.endpoints:
            self._endpoints(name, args, vpc, [public_rt, *private_rts], tags, child)

    def _endpoints(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc, route_tables: list[aws.ec2.RouteTable],
                   tags: dict[str, str], child: pulumi.ResourceOptions) -> None:
        sg = aws.ec2.SecurityGroup(f"{name}-endpoints-sg", vpc_id=vpc.id,
                                   description="VPC endpoints: HTTPS from inside the VPC", tags=tags, opts=child)
        aws.vpc.SecurityGroupIngressRule(f"{name}-endpoints-https", security_group_id=sg.id, ip_protocol="tcp",
                                         from_port=443, to_port=443, cidr_ipv4=args.vpc_cidr,
                                         description="tasks in the VPC", opts=child)
        for service in ENDPOINT_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{name}-endpoint-{service.replace('.', '-')}", vpc_id=vpc.id, vpc_endpoint_type="Interface",
                service_name=pulumi.Output.concat("com.amazonaws.", args.region, f".{service}"),
                subnet_ids=self.private_subnet_ids, security_group_ids=[sg.id], private_dns_enabled=True,
                tags={**tags, "Name": f"{args.name_prefix}-{service}"}, opts=child)
        aws.ec2.VpcEndpoint(
            f"{name}-endpoint-s3", vpc_id=vpc.id, vpc_endpoint_type="Gateway",
            service_name=pulumi.Output.concat("com.amazonaws.", args.region, ".s3"),
            route_table_ids=[rt.id for rt in route_tables], tags={**tags, "Name": f"{args.name_prefix}-s3"},
            opts=child)
