"""profile-api: the service that buckles under the parallel strategy.

Endpoints (name = the k6 request name and the endpoint's name in GET /status):
- GET  /profiles/{id}        profile_get   (cacheable: key profile:{id})
- PUT  /profiles/{id}        profile_put   (invalidates profile:{id})
- GET  /profiles/{id}/feed   profile_feed  (cacheable: key feed:{id})

Every database access holds its pooled connection for PROFILE_DB_MS (default 50 ms),
so with pool size P the service serves at most P / (PROFILE_DB_MS / 1000) req/s of
cache misses and writes; above that, requests queue for a connection and latency
grows with the queue. Cache hits touch no connection.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from demo.services.app import ApiError, ServiceContext, iso, json_body, now, timed
from demo.services.schema import follows, posts, profiles

FEED_SIZE = 20


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=80)
    headline: str | None = Field(default=None, max_length=120)
    location: str | None = Field(default=None, max_length=80)
    bio: str | None = Field(default=None, max_length=2000)
    skills: list[str] | None = Field(default=None, max_length=30)


def _profile_json(row: Any, recent: list[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "display_name": row.display_name,
        "headline": row.headline,
        "location": row.location,
        "bio": row.bio,
        "skills": list(row.skills),
        "followers": row.followers,
        "following": row.following,
        "updated_at": iso(row.updated_at),
        "recent_posts": [
            {"id": p.id, "body": p.body, "likes": p.likes, "created_at": iso(p.created_at)} for p in recent
        ],
    }


def build_routes(ctx: ServiceContext) -> list[BaseRoute]:
    db, cache = ctx.db, ctx.cache
    hold_s = ctx.settings.hold_s

    async def read_profile(conn: Any, profile_id: int) -> dict[str, Any]:
        row = (await conn.execute(select(profiles).where(profiles.c.id == profile_id))).first()
        if row is None:
            raise ApiError(404, f"profile {profile_id} not found")
        recent = (await conn.execute(
            select(posts.c.id, posts.c.body, posts.c.likes, posts.c.created_at)
            .where(posts.c.profile_id == profile_id)
            .order_by(posts.c.created_at.desc()).limit(3)
        )).all()
        return _profile_json(row, list(recent))

    async def profile_get(request: Request) -> Response:
        profile_id = int(request.path_params["profile_id"])

        async def load() -> dict[str, Any]:
            async with db.connection(hold_s) as conn:
                return await read_profile(conn, profile_id)

        return JSONResponse(await cache.get_or_load("profile_get", f"profile:{profile_id}", load))

    async def profile_put(request: Request) -> Response:
        profile_id = int(request.path_params["profile_id"])
        values = (await json_body(request, ProfileUpdate)).model_dump(exclude_none=True)
        if not values:
            raise ApiError(422, "body: give at least one of display_name, headline, location, bio, skills")
        async with db.connection(hold_s) as conn:
            result = await conn.execute(
                update(profiles).where(profiles.c.id == profile_id).values(**values, updated_at=now())
            )
            if result.rowcount == 0:
                raise ApiError(404, f"profile {profile_id} not found")
            body = await read_profile(conn, profile_id)
            await conn.commit()
            cache.invalidate(f"profile:{profile_id}")
        return JSONResponse(body)

    async def profile_feed(request: Request) -> Response:
        profile_id = int(request.path_params["profile_id"])

        async def load() -> dict[str, Any]:
            async with db.connection(hold_s) as conn:
                exists = (await conn.execute(select(profiles.c.id).where(profiles.c.id == profile_id))).first()
                if exists is None:
                    raise ApiError(404, f"profile {profile_id} not found")
                rows = (await conn.execute(
                    select(posts.c.id, posts.c.body, posts.c.likes, posts.c.created_at,
                           profiles.c.id.label("author_id"), profiles.c.username)
                    .join(follows, follows.c.followee_id == posts.c.profile_id)
                    .join(profiles, profiles.c.id == posts.c.profile_id)
                    .where(follows.c.follower_id == profile_id)
                    .order_by(posts.c.created_at.desc(), posts.c.id.desc())
                    .limit(FEED_SIZE)
                )).all()
            return {
                "profile_id": profile_id,
                "items": [
                    {"post_id": r.id, "author": {"id": r.author_id, "username": r.username},
                     "body": r.body, "likes": r.likes, "created_at": iso(r.created_at)}
                    for r in rows
                ],
            }

        return JSONResponse(await cache.get_or_load("profile_feed", f"feed:{profile_id}", load))

    return [
        Route("/profiles/{profile_id:int}", timed(ctx, "profile_get", profile_get), methods=["GET"]),
        Route("/profiles/{profile_id:int}", timed(ctx, "profile_put", profile_put), methods=["PUT"]),
        Route("/profiles/{profile_id:int}/feed", timed(ctx, "profile_feed", profile_feed), methods=["GET"]),
    ]
