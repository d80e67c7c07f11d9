"""core-api: jobs, ecommerce and notifications. Fast (a few ms a request); it holds up.

Endpoints (name = the k6 request name and the endpoint's name in GET /status; * = cacheable):
- jobs:          GET /jobs jobs_list*, GET /jobs/search jobs_search*, GET /jobs/{id} jobs_detail*,
                 POST /jobs jobs_create, POST /jobs/{id}/applications jobs_apply
- ecommerce:     GET /products products_list*, GET /products/search products_search*,
                 GET /products/{id} product_detail*, POST /carts cart_create,
                 POST /carts/{id}/items cart_add, GET /carts/{id} cart_get,
                 POST /orders order_create, GET /orders/{id} order_get
- notifications: GET /users/{uid}/notifications notifications_list*,
                 POST /users/{uid}/notifications notifications_create,
                 POST /users/{uid}/notifications/{id}/read notifications_mark_read

Writes invalidate what they change: a new job drops every cached job list and
search; an application drops that job's detail (its application count); an order
drops the details (stock) of the products it bought; a new or read notification
drops that user's cached lists.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import String, and_, cast, func, insert, or_, select, update
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from demo.services.app import ApiError, ServiceContext, iso, json_body, now, query_int, timed
from demo.services.schema import (
    cart_items,
    carts,
    job_applications,
    jobs,
    notifications,
    order_items,
    orders,
    products,
)
from demo.services.seed_data import CATEGORIES

PER_PAGE = 20
MAX_ID = 2**31 - 1


class NewJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=3, max_length=120)
    company: str = Field(min_length=1, max_length=80)
    location: str = Field(min_length=1, max_length=80)
    remote: bool = False
    salary_min: int = Field(ge=0, le=10_000_000)
    salary_max: int = Field(ge=0, le=10_000_000)
    tags: list[str] = Field(default_factory=list, max_length=10)
    description: str = Field(default="", max_length=5000)


class NewApplication(BaseModel):
    model_config = ConfigDict(extra="forbid")

    applicant: str = Field(min_length=1, max_length=80)
    cover_letter: str = Field(default="", max_length=5000)


class NewCart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=1, le=MAX_ID)


class NewCartItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: int = Field(ge=1, le=MAX_ID)
    quantity: int = Field(ge=1, le=20)


class NewOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cart_id: int = Field(ge=1, le=MAX_ID)


class NewNotification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["message", "job_alert", "order", "mention", "system"]
    title: str = Field(min_length=1, max_length=120)
    body: str = Field(default="", max_length=2000)


def _job_summary(r: Any) -> dict[str, Any]:
    return {
        "id": r.id, "title": r.title, "company": r.company, "location": r.location, "remote": r.remote,
        "salary": {"min": r.salary_min, "max": r.salary_max, "currency": "USD"},
        "tags": list(r.tags), "posted_at": iso(r.posted_at),
    }


def _product_summary(r: Any) -> dict[str, Any]:
    return {
        "id": r.id, "sku": r.sku, "name": r.name, "category": r.category,
        "price": {"amount_cents": r.price_cents, "currency": "USD"},
        "rating": r.rating / 10, "in_stock": r.stock > 0,
    }


def _notification(r: Any) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "title": r.title, "body": r.body, "read": r.read,
            "created_at": iso(r.created_at)}


def _path_id(request: Request, name: str) -> int:
    value = int(request.path_params[name])
    if not 1 <= value <= MAX_ID:
        raise ApiError(404, f"{name} {value} not found")
    return value


def build_routes(ctx: ServiceContext) -> list[BaseRoute]:
    db, cache = ctx.db, ctx.cache
    job_cols = [jobs.c.id, jobs.c.title, jobs.c.company, jobs.c.location, jobs.c.remote,
                jobs.c.salary_min, jobs.c.salary_max, jobs.c.tags, jobs.c.posted_at]

    async def job_page(where: Any, page: int) -> dict[str, Any]:
        async with db.connection() as conn:
            total = (await conn.execute(select(func.count()).select_from(jobs).where(where))).scalar_one()
            rows = (await conn.execute(
                select(*job_cols).where(where).order_by(jobs.c.posted_at.desc(), jobs.c.id.desc())
                .limit(PER_PAGE).offset((page - 1) * PER_PAGE)
            )).all()
        return {"page": page, "per_page": PER_PAGE, "total": total, "items": [_job_summary(r) for r in rows]}

    # ---- jobs
    async def jobs_list(request: Request) -> Response:
        page = query_int(request, "page", 1, 1, 1000)
        location = (request.query_params.get("location") or "").strip()
        remote = request.query_params.get("remote") in ("1", "true", "yes")
        conds = [jobs.c.id > 0]
        if location:
            conds.append(jobs.c.location == location)
        if remote:
            conds.append(jobs.c.remote.is_(True))
        key = f"jobs_list:{page}:{location}:{int(remote)}"
        body = await cache.get_or_load("jobs_list", key, lambda: job_page(and_(*conds), page))
        return JSONResponse(body)

    async def jobs_search(request: Request) -> Response:
        q = (request.query_params.get("q") or "").strip().lower()
        if not 2 <= len(q) <= 60:
            raise ApiError(400, "query parameter q must have 2 to 60 characters")
        page = query_int(request, "page", 1, 1, 1000)
        pattern = f"%{q}%"
        where = or_(func.lower(jobs.c.title).like(pattern), func.lower(jobs.c.company).like(pattern),
                    func.lower(cast(jobs.c.tags, String)).like(pattern))
        body = await cache.get_or_load("jobs_search", f"jobs_search:{q}:{page}", lambda: job_page(where, page))
        return JSONResponse({"query": q, **body})

    async def jobs_detail(request: Request) -> Response:
        job_id = _path_id(request, "job_id")

        async def load() -> dict[str, Any]:
            async with db.connection() as conn:
                r = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
            if r is None:
                raise ApiError(404, f"job {job_id} not found")
            return {**_job_summary(r), "description": r.description, "applications": r.applications}

        return JSONResponse(await cache.get_or_load("jobs_detail", f"jobs_detail:{job_id}", load))

    async def jobs_create(request: Request) -> Response:
        job = await json_body(request, NewJob)
        if job.salary_max < job.salary_min:
            raise ApiError(422, "salary_max: must be >= salary_min")
        async with db.connection() as conn:
            new_id = (await conn.execute(
                insert(jobs).values(**job.model_dump(), applications=0, posted_at=now()).returning(jobs.c.id)
            )).scalar_one()
            r = (await conn.execute(select(jobs).where(jobs.c.id == new_id))).one()
            await conn.commit()
        cache.invalidate_prefix("jobs_list:")
        cache.invalidate_prefix("jobs_search:")
        return JSONResponse({**_job_summary(r), "description": r.description, "applications": 0}, status_code=201)

    async def jobs_apply(request: Request) -> Response:
        job_id = _path_id(request, "job_id")
        application = await json_body(request, NewApplication)
        async with db.connection() as conn:
            result = await conn.execute(
                update(jobs).where(jobs.c.id == job_id).values(applications=jobs.c.applications + 1)
            )
            if result.rowcount == 0:
                raise ApiError(404, f"job {job_id} not found")
            app_id = (await conn.execute(
                insert(job_applications).values(job_id=job_id, created_at=now(), **application.model_dump())
                .returning(job_applications.c.id)
            )).scalar_one()
            await conn.commit()
        cache.invalidate(f"jobs_detail:{job_id}")
        return JSONResponse({"id": app_id, "job_id": job_id, "applicant": application.applicant,
                             "status": "submitted"}, status_code=201)

    # ---- ecommerce
    prod_cols = [products.c.id, products.c.sku, products.c.name, products.c.category, products.c.price_cents,
                 products.c.rating, products.c.stock]

    async def product_page(where: Any, page: int) -> dict[str, Any]:
        async with db.connection() as conn:
            total = (await conn.execute(select(func.count()).select_from(products).where(where))).scalar_one()
            rows = (await conn.execute(
                select(*prod_cols).where(where).order_by(products.c.rating.desc(), products.c.id)
                .limit(PER_PAGE).offset((page - 1) * PER_PAGE)
            )).all()
        return {"page": page, "per_page": PER_PAGE, "total": total, "items": [_product_summary(r) for r in rows]}

    async def products_list(request: Request) -> Response:
        page = query_int(request, "page", 1, 1, 1000)
        category = (request.query_params.get("category") or "").strip()
        if category and category not in CATEGORIES:
            raise ApiError(400, f"unknown category {category!r}; one of: {', '.join(CATEGORIES)}")
        where = products.c.category == category if category else products.c.id > 0
        key = f"products_list:{category}:{page}"
        return JSONResponse(await cache.get_or_load("products_list", key, lambda: product_page(where, page)))

    async def products_search(request: Request) -> Response:
        q = (request.query_params.get("q") or "").strip().lower()
        if not 2 <= len(q) <= 60:
            raise ApiError(400, "query parameter q must have 2 to 60 characters")
        where = or_(func.lower(products.c.name).like(f"%{q}%"), products.c.category == q)
        body = await cache.get_or_load("products_search", f"products_search:{q}", lambda: product_page(where, 1))
        return JSONResponse({"query": q, **body})

    async def product_detail(request: Request) -> Response:
        product_id = _path_id(request, "product_id")

        async def load() -> dict[str, Any]:
            async with db.connection() as conn:
                r = (await conn.execute(select(products).where(products.c.id == product_id))).first()
            if r is None:
                raise ApiError(404, f"product {product_id} not found")
            return {**_product_summary(r), "stock": r.stock, "description": r.description}

        return JSONResponse(await cache.get_or_load("product_detail", f"product_detail:{product_id}", load))

    async def cart_json(conn: Any, cart_id: int) -> dict[str, Any]:
        cart = (await conn.execute(select(carts).where(carts.c.id == cart_id))).first()
        if cart is None:
            raise ApiError(404, f"cart {cart_id} not found")
        rows = (await conn.execute(
            select(cart_items.c.product_id, cart_items.c.quantity, products.c.name, products.c.price_cents)
            .join(products, products.c.id == cart_items.c.product_id)
            .where(cart_items.c.cart_id == cart_id).order_by(cart_items.c.id)
        )).all()
        items = [{"product_id": r.product_id, "name": r.name, "quantity": r.quantity,
                  "price_cents": r.price_cents, "line_total_cents": r.price_cents * r.quantity} for r in rows]
        return {"id": cart.id, "user_id": cart.user_id, "items": items,
                "total_cents": sum(i["line_total_cents"] for i in items), "created_at": iso(cart.created_at)}

    async def cart_create(request: Request) -> Response:
        new = await json_body(request, NewCart)
        async with db.connection() as conn:
            cart_id = (await conn.execute(
                insert(carts).values(user_id=new.user_id, created_at=now()).returning(carts.c.id)
            )).scalar_one()
            body = await cart_json(conn, cart_id)
            await conn.commit()
        return JSONResponse(body, status_code=201)

    async def cart_add(request: Request) -> Response:
        cart_id = _path_id(request, "cart_id")
        item = await json_body(request, NewCartItem)
        async with db.connection() as conn:
            if (await conn.execute(select(carts.c.id).where(carts.c.id == cart_id))).first() is None:
                raise ApiError(404, f"cart {cart_id} not found")
            if (await conn.execute(select(products.c.id).where(products.c.id == item.product_id))).first() is None:
                raise ApiError(422, f"product_id: product {item.product_id} does not exist")
            await conn.execute(insert(cart_items).values(cart_id=cart_id, **item.model_dump()))
            body = await cart_json(conn, cart_id)
            await conn.commit()
        return JSONResponse(body, status_code=201)

    async def cart_get(request: Request) -> Response:
        cart_id = _path_id(request, "cart_id")
        async with db.connection() as conn:
            return JSONResponse(await cart_json(conn, cart_id))

    async def order_json(conn: Any, order_id: int) -> dict[str, Any]:
        order = (await conn.execute(select(orders).where(orders.c.id == order_id))).first()
        if order is None:
            raise ApiError(404, f"order {order_id} not found")
        rows = (await conn.execute(select(order_items).where(order_items.c.order_id == order_id)
                                   .order_by(order_items.c.id))).all()
        return {"id": order.id, "user_id": order.user_id, "cart_id": order.cart_id, "status": order.status,
                "total_cents": order.total_cents, "created_at": iso(order.created_at),
                "items": [{"product_id": r.product_id, "name": r.name, "quantity": r.quantity,
                           "price_cents": r.price_cents} for r in rows]}

    async def order_create(request: Request) -> Response:
        new = await json_body(request, NewOrder)
        async with db.connection() as conn:
            cart = await cart_json(conn, new.cart_id)
            if not cart["items"]:
                raise ApiError(409, f"cart {new.cart_id} is empty")
            if (await conn.execute(select(orders.c.id).where(orders.c.cart_id == new.cart_id))).first():
                raise ApiError(409, f"cart {new.cart_id} was already ordered")
            for it in cart["items"]:
                done = await conn.execute(
                    update(products).where(products.c.id == it["product_id"], products.c.stock >= it["quantity"])
                    .values(stock=products.c.stock - it["quantity"])
                )
                if done.rowcount == 0:
                    raise ApiError(409, f"product {it['product_id']} is out of stock")
            order_id = (await conn.execute(
                insert(orders).values(user_id=cart["user_id"], cart_id=new.cart_id, status="confirmed",
                                      total_cents=cart["total_cents"], created_at=now()).returning(orders.c.id)
            )).scalar_one()
            await conn.execute(insert(order_items), [
                {"order_id": order_id, "product_id": it["product_id"], "name": it["name"],
                 "quantity": it["quantity"], "price_cents": it["price_cents"]} for it in cart["items"]
            ])
            body = await order_json(conn, order_id)
            await conn.commit()
        cache.invalidate(*{f"product_detail:{it['product_id']}" for it in cart["items"]})
        return JSONResponse(body, status_code=201)

    async def order_get(request: Request) -> Response:
        order_id = _path_id(request, "order_id")
        async with db.connection() as conn:
            return JSONResponse(await order_json(conn, order_id))

    # ---- notifications
    async def notifications_list(request: Request) -> Response:
        user_id = _path_id(request, "user_id")
        unread = request.query_params.get("unread") in ("1", "true", "yes")
        limit = query_int(request, "limit", 20, 1, 100)

        async def load() -> dict[str, Any]:
            where = notifications.c.user_id == user_id
            if unread:
                where = and_(where, notifications.c.read.is_(False))
            async with db.connection() as conn:
                rows = (await conn.execute(
                    select(notifications).where(where)
                    .order_by(notifications.c.created_at.desc(), notifications.c.id.desc()).limit(limit)
                )).all()
                unread_count = (await conn.execute(
                    select(func.count()).select_from(notifications)
                    .where(notifications.c.user_id == user_id, notifications.c.read.is_(False))
                )).scalar_one()
            return {"user_id": user_id, "unread": unread_count, "items": [_notification(r) for r in rows]}

        key = f"notifications_list:{user_id}:{int(unread)}:{limit}"
        return JSONResponse(await cache.get_or_load("notifications_list", key, load))

    async def notifications_create(request: Request) -> Response:
        user_id = _path_id(request, "user_id")
        new = await json_body(request, NewNotification)
        async with db.connection() as conn:
            nid = (await conn.execute(
                insert(notifications).values(user_id=user_id, read=False, created_at=now(), **new.model_dump())
                .returning(notifications.c.id)
            )).scalar_one()
            r = (await conn.execute(select(notifications).where(notifications.c.id == nid))).one()
            await conn.commit()
        cache.invalidate_prefix(f"notifications_list:{user_id}:")
        return JSONResponse(_notification(r), status_code=201)

    async def notifications_mark_read(request: Request) -> Response:
        user_id = _path_id(request, "user_id")
        nid = _path_id(request, "notification_id")
        async with db.connection() as conn:
            done = await conn.execute(
                update(notifications)
                .where(notifications.c.id == nid, notifications.c.user_id == user_id).values(read=True)
            )
            if done.rowcount == 0:
                raise ApiError(404, f"notification {nid} of user {user_id} not found")
            r = (await conn.execute(select(notifications).where(notifications.c.id == nid))).one()
            await conn.commit()
        cache.invalidate_prefix(f"notifications_list:{user_id}:")
        return JSONResponse(_notification(r))

    def route(path: str, name: str, handler: Any, method: str) -> Route:
        return Route(path, timed(ctx, name, handler), methods=[method])

    return [
        route("/jobs", "jobs_list", jobs_list, "GET"),
        route("/jobs", "jobs_create", jobs_create, "POST"),
        route("/jobs/search", "jobs_search", jobs_search, "GET"),
        route("/jobs/{job_id:int}", "jobs_detail", jobs_detail, "GET"),
        route("/jobs/{job_id:int}/applications", "jobs_apply", jobs_apply, "POST"),
        route("/products", "products_list", products_list, "GET"),
        route("/products/search", "products_search", products_search, "GET"),
        route("/products/{product_id:int}", "product_detail", product_detail, "GET"),
        route("/carts", "cart_create", cart_create, "POST"),
        route("/carts/{cart_id:int}", "cart_get", cart_get, "GET"),
        route("/carts/{cart_id:int}/items", "cart_add", cart_add, "POST"),
        route("/orders", "order_create", order_create, "POST"),
        route("/orders/{order_id:int}", "order_get", order_get, "GET"),
        route("/users/{user_id:int}/notifications", "notifications_list", notifications_list, "GET"),
        route("/users/{user_id:int}/notifications", "notifications_create", notifications_create, "POST"),
        route("/users/{user_id:int}/notifications/{notification_id:int}/read", "notifications_mark_read",
              notifications_mark_read, "POST"),
    ]
