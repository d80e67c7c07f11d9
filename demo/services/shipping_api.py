"""shipping-api: shipping quotes, limited by the requests one instance serves at a time.

Endpoint (name = the k6 request name):
- POST /quotes   shipping_quote   {"origin": "DE", "destination": "US", "weight_kg": 2.5}

Each quote reads the rate card of the destination's zone from the database (a short
pooled read), then waits CARRIER_MS (default 200 ms) on the carrier's rate API while
holding one of the instance's MAX_INFLIGHT slots (default 5). So one instance serves
at most MAX_INFLIGHT / CARRIER_MS = 25 quotes per second; above that, requests queue
for a slot and latency grows with the queue. Neither the pool (the read is short) nor
the CPU (the wait is idle) is the limit: more instances (INSTANCES) are the fix.
A quote is a POST, never cached.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from demo.services.app import ApiError, ServiceContext, json_body, timed
from demo.services.schema import carrier_rates
from demo.services.seed_data import ZONES, zone_of


class QuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origin: str = Field(min_length=2, max_length=2)
    destination: str = Field(min_length=2, max_length=2)
    weight_kg: float = Field(gt=0, le=70)


def capacity_rps(max_inflight: int, carrier_ms: float) -> float:
    """One instance's most quotes per second: its slots over the time each request holds one."""
    return max_inflight / (carrier_ms / 1000.0) if carrier_ms > 0 else math.inf


def build_routes(ctx: ServiceContext) -> list[BaseRoute]:
    db, limit = ctx.db, ctx.inflight
    carrier_s = ctx.settings.carrier_ms / 1000.0

    async def shipping_quote(request: Request) -> Response:
        quote = await json_body(request, QuoteRequest)
        for key in ("origin", "destination"):
            if getattr(quote, key) not in ZONES:
                raise ApiError(422, f"{key}: {getattr(quote, key)!r} is not served; one of: {', '.join(ZONES)}")
        zone = zone_of(quote.destination) if zone_of(quote.origin) == "EU" else "FAR"
        async with limit.slot():
            async with db.connection() as conn:
                rows = (await conn.execute(select(carrier_rates).where(carrier_rates.c.zone == zone)
                                           .order_by(carrier_rates.c.id))).all()
            await asyncio.sleep(carrier_s)  # the carrier's rate API answers
        offers: list[dict[str, Any]] = sorted(
            ({"carrier": r.carrier, "price_cents": r.base_cents + math.ceil(quote.weight_kg * r.per_kg_cents),
              "currency": "EUR", "days": r.days} for r in rows),
            key=lambda o: (o["price_cents"], o["carrier"]))
        return JSONResponse({"origin": quote.origin, "destination": quote.destination, "zone": zone,
                             "weight_kg": quote.weight_kg, "offers": offers})

    return [Route("/quotes", timed(ctx, "shipping_quote", shipping_quote), methods=["POST"])]
