"""What a Fargate runner fleet costs, estimated before launch, and `--max-cost`.

Prices are AWS Fargate list prices for Linux/x86 tasks on Amazon ECS, per vCPU-hour
and per GB-hour, as published on https://aws.amazon.com/fargate/pricing/ and recorded
here on PRICES_AS_OF. They are an estimate, not a quote: AWS changes prices, and a
bill also carries data transfer, NAT gateway processing, public IPv4 addresses,
CloudWatch Logs ingestion and S3 requests, which this does not count.

- Billing follows Fargate's rule: per second, from the image pull until the task
  stops, with a one-minute minimum per task.
- Fargate Spot prices move with supply and demand ("up to 70 % off" on-demand, per
  AWS). The estimate takes the smaller end of the range AWS quotes, 50 % off, so a
  Spot estimate does not undercount.
- A region missing from the table is priced at the highest on-demand price in it
  (sa-east-1), and the explanation says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import BadInput

PRICES_AS_OF = "2026-11-27"
PRICING_URL = "https://aws.amazon.com/fargate/pricing/"
SPOT_FACTOR = 0.5            # Spot = on-demand x 0.5 (AWS: "up to 70 % off"; we assume 50 %)
MIN_BILLED_S = 60.0          # Fargate's one-minute minimum per task

# region: (USD per vCPU-hour, USD per GB-hour), Linux/x86, on-demand.
ON_DEMAND: dict[str, tuple[float, float]] = {
    "us-east-1": (0.04048, 0.004445),
    "us-east-2": (0.04048, 0.004445),
    "us-west-2": (0.04048, 0.004445),
    "eu-west-1": (0.04048, 0.004445),
    "us-west-1": (0.04656, 0.00511),
    "eu-central-1": (0.04656, 0.00511),
    "eu-west-2": (0.04656, 0.00511),
    "eu-west-3": (0.04656, 0.00511),
    "ap-northeast-2": (0.04656, 0.00511),
    "ap-south-1": (0.04256, 0.00467),
    "ca-central-1": (0.04456, 0.00489),
    "ap-southeast-1": (0.05056, 0.00553),
    "ap-southeast-2": (0.05056, 0.00553),
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
