"""What a Fargate runner fleet costs, estimated before launch, and `--max-cost`.

Prices are AWS list prices for Linux/x86 Fargate tasks on Amazon ECS (per vCPU-hour and per
GB-hour), NAT gateway data processing (per GB) and public IPv4 addresses (per hour), recorded
here on PRICES_AS_OF. They are an estimate, not a quote: AWS changes prices, and a bill also
carries CloudWatch Logs ingestion, S3 requests and the stack's standing cost (InfluxDB,
Grafana, the load balancer, the NAT gateway's hours), which this does not count.

- Billing follows Fargate's rule: per second, from the image pull until the task
  stops, with a one-minute minimum per task.
- Fargate Spot prices move with supply and demand ("up to 70 % off" on-demand, per
  AWS). The estimate takes the smaller end of the range AWS quotes, 50 % off, so a
  Spot estimate does not undercount.
- A region missing from the table is priced at the highest on-demand price in it
  (sa-east-1), and the explanation says so.
- Runners in private subnets pull every response through the NAT gateway, which bills
  each GB it processes; runners in public subnets (`runnerSubnets: public`) skip the NAT
  and bill a public IPv4 address per task-hour instead.

Where each price was checked (AWS renders its regional Fargate prices in the browser, so
the page text could not be read here; these are copies of AWS's Price List records and
bills found in public repositories through the project's search tool, on PRICES_AS_OF):
- us-east-1, us-east-2, us-west-2, eu-west-1 0.04048 / 0.004445: AWS's ECS pricing page's own
  example ($0.000011244 per vCPU-second = $0.04048/h for us-east-1) and two price-list copies.
- eu-central-1 0.04656 / 0.00511 (usage type EUC1-Fargate-*), ap-northeast-1 0.05056 (APN1-*),
  ca-central-1 0.04456 / 0.004865 (CAN1-*): price-list copies of 2025-2026, two sources each;
  ca-central-1's memory price was 0.00489 here before and is corrected.
- us-west-1, eu-west-2, ap-northeast-2, ap-southeast-1, sa-east-1, ap-northeast-1's memory:
  one secondary source (a calculator's table extracted from AWS's page), NOT checked against
  AWS's price list.
- eu-west-3, ap-southeast-2, ap-south-1: the sources disagree (eu-west-3 0.0486 / 0.0053 and
  ap-southeast-2 0.04856 / 0.00532 in one table; ap-south-1 memory 0.004655 in one, 0.004445
  from a 2026 bill), NOT verified: the table keeps the higher of each, so as not to undercount.
- NAT gateway data processing $0.045 per GB: us-east-1 from a copy of the AWS Price List API
  (2025-10). Other regions: NOT verified; the estimate uses us-east-1's price and says so
  (NAT costs more per GB in several regions, so there it undercounts).
- public IPv4 $0.005 per address-hour: AWS's charge for public IPv4 addresses since 2024-02,
  the same in every commercial region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import BadInput

PRICES_AS_OF = "2026-12-01"
PRICING_URL = "https://aws.amazon.com/fargate/pricing/"
NAT_PRICING_URL = "https://aws.amazon.com/vpc/pricing/"
SPOT_FACTOR = 0.5            # Spot = on-demand x 0.5 (AWS: "up to 70 % off"; we assume 50 %)
MIN_BILLED_S = 60.0          # Fargate's one-minute minimum per task
# NAT gateway data processing, USD per GB, by region (see the module docstring for what is verified).
NAT_PER_GB: dict[str, float] = {"us-east-1": 0.045}
PUBLIC_IPV4_HOUR = 0.005     # USD per public IPv4 address and hour
GB = 1e9

# region: (USD per vCPU-hour, USD per GB-hour), Linux/x86, on-demand.
ON_DEMAND: dict[str, tuple[float, float]] = {
    "us-east-1": (0.04048, 0.004445),
    "us-east-2": (0.04048, 0.004445),
    "us-west-2": (0.04048, 0.004445),
    "eu-west-1": (0.04048, 0.004445),
    "us-west-1": (0.04656, 0.00511),
    "eu-central-1": (0.04656, 0.00511),
    "eu-west-2": (0.04656, 0.00511),
    "eu-west-3": (0.0486, 0.0053),          # not verified (see the module docstring)
    "ap-northeast-2": (0.04656, 0.00511),
    "ap-south-1": (0.04256, 0.004655),      # not verified (see the module docstring)
    "ca-central-1": (0.04456, 0.004865),
    "ap-southeast-1": (0.05056, 0.00553),
    "ap-southeast-2": (0.05056, 0.00553),   # not verified (see the module docstring)
    "ap-northeast-1": (0.05056, 0.00553),
    "sa-east-1": (0.0696, 0.0076),
}


@dataclass(frozen=True)
class Price:
    """Per-hour Fargate prices used for one estimate, and where they came from."""

    region: str
    spot: bool
    vcpu_hour: float
    gb_hour: float
    note: str

    def describe(self) -> str:
        kind = "Spot (assumed 50 % below on-demand)" if self.spot else "on-demand"
        text = (f"Fargate {kind}, Linux/x86, {self.region}: ${self.vcpu_hour:.5f}/vCPU-h + "
                f"${self.gb_hour:.6f}/GB-h (list prices of {PRICES_AS_OF}, {PRICING_URL})")
        return f"{text}; {self.note}" if self.note else text


def price(region: str, spot: bool) -> Price:
    """The per-hour prices for `region` (the highest listed when the region is unknown)."""
    note = ""
    if region in ON_DEMAND:
        vcpu, gb = ON_DEMAND[region]
    else:
        top = max(ON_DEMAND, key=lambda r: ON_DEMAND[r][0])
        vcpu, gb = ON_DEMAND[top]
        note = f"no price for {region} in the table: used the highest listed ({top}) so as not to undercount"
    if spot:
        vcpu, gb = vcpu * SPOT_FACTOR, gb * SPOT_FACTOR
    return Price(region=region, spot=spot, vcpu_hour=vcpu, gb_hour=gb, note=note)


def billed_seconds(seconds: float) -> float:
    """Seconds Fargate bills for a task that lives `seconds`: whole seconds, one minute at least."""
    return max(MIN_BILLED_S, float(math.ceil(seconds)))


def estimate(tasks: int, cpu: float, memory_gb: float, seconds: float, region: str, spot: bool) -> float:
    """USD for `tasks` Fargate tasks of `cpu` vCPU and `memory_gb` GB, each alive `seconds`."""
    if tasks <= 0:
        return 0.0
    p = price(region, spot)
    hours = billed_seconds(seconds) / 3600.0
    return tasks * hours * (cpu * p.vcpu_hour + memory_gb * p.gb_hour)


def check_max_cost(total_usd: float, max_cost: float | None, explanation: str) -> None:
    """Raise BadInput (exit 2, before any task starts) when the estimate is above `max_cost`."""
    if max_cost is None:
        return
    if max_cost < 0:
        raise BadInput(f"--max-cost {max_cost}: give a positive amount in USD")
    if total_usd > max_cost:
        raise BadInput(
            f"refusing to start: the estimated cost ${total_usd:.4f} is above --max-cost ${max_cost:.4f}.\n"
            f"{explanation}\n"
            "Lower --runners or the modules' durations, or raise --max-cost."
        )


@dataclass(frozen=True)
class Transfer:
    """What the runners' traffic costs beyond Fargate: NAT data processing, or public addresses."""

    usd: float
    text: str


def nat_price(region: str) -> tuple[float, str]:
    """USD per GB a NAT gateway processes in `region`, and a note when it is not verified."""
    if region in NAT_PER_GB:
        return NAT_PER_GB[region], ""
    return NAT_PER_GB["us-east-1"], (f"no verified NAT price for {region}: counted at us-east-1's; it may be "
                                     "higher there")


def transfer(*, public_ip: bool, region: str, bytes_through: float, task_seconds: float) -> Transfer:
    """NAT data processing for `bytes_through` bytes (runners in private subnets), or a public IPv4
    address for `task_seconds` of task life (runners with public IPs, no NAT)."""
    if public_ip:
        usd = task_seconds / 3600 * PUBLIC_IPV4_HOUR
        return Transfer(usd, f"public IPv4: {task_seconds / 3600:.2f} task-hours x ${PUBLIC_IPV4_HOUR}/h = "
                             f"${usd:.4f} (runners in public subnets: no NAT gateway data charge)")
    per_gb, note = nat_price(region)
    usd = bytes_through / GB * per_gb
    text = (f"NAT gateway data: {bytes_through / GB:.3f} GB x ${per_gb}/GB = ${usd:.4f} ({NAT_PRICING_URL}"
            + (f"; {note})" if note else ")"))
    return Transfer(usd, text)
