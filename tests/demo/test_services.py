"""The demo services answer realistic JSON, writes are visible, and writes invalidate the cache.

Every test runs on SQLite and on PostgreSQL (the `database` parameter).
"""

from __future__ import annotations

import httpx

from tests.demo.conftest import StartService


def metrics(url: str) -> dict:  # type: ignore[type-arg]
    return httpx.get(f"{url}/status", timeout=10).json()


def test_core_api_serves_jobs_ecommerce_and_notifications(services: StartService) -> None:
    core = services("core-api")
    with httpx.Client(base_url=core.url, timeout=10) as c:
        assert c.get("/health").json()["status"] == "ok"

        jobs = c.get("/jobs", params={"page": 1}).json()
        assert jobs["total"] == 600 and len(jobs["items"]) == 20
        job = jobs["items"][0]
        assert {"id", "title", "company", "location", "remote", "salary", "tags", "posted_at"} <= set(job)
        found = c.get("/jobs/search", params={"q": "python"}).json()
        assert found["total"] > 0 and all("python" in (j["title"] + j["company"] + str(j["tags"])).lower()
                                          for j in found["items"])
        assert c.get(f"/jobs/{job['id']}").json()["applications"] == 0
        created = c.post("/jobs", json={"title": "Staff SRE", "company": "Load Bearing Inc.", "location": "Berlin",
                                        "salary_min": 90000, "salary_max": 120000, "tags": ["k6"]})
        assert created.status_code == 201
        assert c.get("/jobs").json()["items"][0]["id"] == created.json()["id"]  # newest first
        applied = c.post(f"/jobs/{job['id']}/applications", json={"applicant": "ada"})
        assert applied.status_code == 201
        assert c.get(f"/jobs/{job['id']}").json()["applications"] == 1
        assert c.get("/jobs/999999").status_code == 404
        bad = c.post("/jobs", json={"title": "x"})
        assert bad.status_code == 422 and "title" in bad.json()["error"]

        products = c.get("/products", params={"category": "audio"}).json()
        assert products["total"] == 50 and {p["category"] for p in products["items"]} == {"audio"}
        product = c.get(f"/products/{products['items'][0]['id']}").json()
        assert product["in_stock"] and product["price"]["currency"] == "USD"
        cart = c.post("/carts", json={"user_id": 42}).json()
        c.post(f"/carts/{cart['id']}/items", json={"product_id": product["id"], "quantity": 2})
        assert c.get(f"/carts/{cart['id']}").json()["total_cents"] == 2 * product["price"]["amount_cents"]
        order = c.post("/orders", json={"cart_id": cart["id"]})
        assert order.status_code == 201 and order.json()["status"] == "confirmed"
        assert c.get(f"/orders/{order.json()['id']}").json()["total_cents"] == 2 * product["price"]["amount_cents"]
        assert c.get(f"/products/{product['id']}").json()["stock"] == product["stock"] - 2
        assert c.post("/orders", json={"cart_id": cart["id"]}).status_code == 409  # ordered once only

        inbox = c.get("/users/7/notifications", params={"unread": 1}).json()
        assert inbox["unread"] == len([n for n in inbox["items"] if not n["read"]]) > 0
        note = c.post("/users/7/notifications", json={"kind": "message", "title": "Hello"})
        assert note.status_code == 201
        read = c.post(f"/users/7/notifications/{note.json()['id']}/read")
        assert read.json()["read"] is True
        assert c.post(f"/users/8/notifications/{note.json()['id']}/read").status_code == 404

    counted = metrics(core.url)["endpoints"]
    assert counted["jobs_list"]["count"] == 2 and counted["order_create"]["count"] == 2
    assert counted["order_create"]["errors"] == 0  # 409 is the client's error, not the server's


def test_profile_api_serves_profiles_feeds_and_updates(services: StartService) -> None:
    profile = services("profile-api", PROFILE_DB_MS="5")
    with httpx.Client(base_url=profile.url, timeout=10) as c:
        body = c.get("/profiles/17").json()
        assert body["id"] == 17 and body["username"] and len(body["skills"]) >= 3
        assert body["following"] == 12 and len(body["recent_posts"]) == 3
        feed = c.get("/profiles/17/feed").json()
        assert len(feed["items"]) == 20
        stamps = [i["created_at"] for i in feed["items"]]
        assert stamps == sorted(stamps, reverse=True)
        updated = c.put("/profiles/17", json={"headline": "Principal Engineer", "skills": ["k6", "python"]})
        assert updated.status_code == 200 and updated.json()["headline"] == "Principal Engineer"
        assert c.get("/profiles/17").json()["skills"] == ["k6", "python"]
        assert c.get("/profiles/999999").status_code == 404
        assert c.put("/profiles/17", json={"favourite_color": "red"}).status_code == 422
    m = metrics(profile.url)
    assert m["settings"]["profile_db_ms"] == 5 and m["pool"]["size"] == 2
    assert m["pool"]["hold_ms_mean"] >= 4.5  # each connection is held at least PROFILE_DB_MS


def test_writes_invalidate_what_they_change(services: StartService) -> None:
    profile = services("profile-api", CACHE_TTL_S="300", PROFILE_DB_MS="1")
    core = services("core-api", CACHE_TTL_S="300")
    with httpx.Client(base_url=profile.url, timeout=10) as c:
        first = c.get("/profiles/5").json()
        assert c.get("/profiles/5").json() == first
        cache = metrics(profile.url)["cache"]["endpoints"]["profile_get"]
        assert (cache["hits"], cache["misses"]) == (1, 1)
        c.put("/profiles/5", json={"headline": "Changed by a write"})
        assert c.get("/profiles/5").json()["headline"] == "Changed by a write"
        assert metrics(profile.url)["cache"]["endpoints"]["profile_get"]["misses"] == 2
        c.get("/profiles/6")
        c.put("/profiles/6", json={"location": "Lisbon"})
        assert c.get("/profiles/5").json()["headline"] == "Changed by a write"  # other keys stay cached
        assert metrics(profile.url)["cache"]["endpoints"]["profile_get"]["hits"] == 2

    with httpx.Client(base_url=core.url, timeout=10) as c:
        before = c.get("/jobs/3").json()["applications"]
        c.post("/jobs/3/applications", json={"applicant": "grace"})
        assert c.get("/jobs/3").json()["applications"] == before + 1
        listed = c.get("/jobs").json()["items"][0]["id"]
        new = c.post("/jobs", json={"title": "Cache Engineer", "company": "Acme", "location": "Lisbon",
                                    "salary_min": 1, "salary_max": 2}).json()
        assert c.get("/jobs").json()["items"][0]["id"] == new["id"] != listed
        assert c.get("/jobs/search", params={"q": "cache engineer"}).json()["total"] == 1
        inbox = c.get("/users/3/notifications", params={"unread": 1}).json()
        c.post(f"/users/3/notifications/{inbox['items'][0]['id']}/read")
        assert c.get("/users/3/notifications", params={"unread": 1}).json()["unread"] == inbox["unread"] - 1
        product = c.get("/products/9").json()
        assert c.get("/products/9").json() == product
        assert metrics(core.url)["cache"]["endpoints"]["product_detail"] == {"hits": 1, "misses": 1, "coalesced": 0}
        cart = c.post("/carts", json={"user_id": 1}).json()
        c.post(f"/carts/{cart['id']}/items", json={"product_id": 9, "quantity": 3})
        c.post("/orders", json={"cart_id": cart["id"]})
        assert c.get("/products/9").json()["stock"] == product["stock"] - 3


def test_overflow_adds_connections_and_a_pool_timeout_answers_503(services: StartService) -> None:
    import time
    from concurrent.futures import ThreadPoolExecutor

    profile = services("profile-api", DB_POOL_SIZE="1", DB_MAX_OVERFLOW="1", DB_POOL_TIMEOUT="0.3",
                       PROFILE_DB_MS="1500")

    def get(pid: int) -> int:
        return httpx.get(f"{profile.url}/profiles/{pid}", timeout=10).status_code

    with ThreadPoolExecutor(3) as pool:
        first = [pool.submit(get, pid) for pid in (1, 2)]
        deadline = time.monotonic() + 5
        seen = metrics(profile.url)["pool"]
        while seen["checked_out"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
            seen = metrics(profile.url)["pool"]
        assert (seen["checked_out"], seen["overflow"]) == (2, 1), seen  # pool 1 + overflow 1, both busy
        third = pool.submit(get, 3)
        # It waits DB_POOL_TIMEOUT for a connection and gets none (both are held 1.5 s).
        assert third.result() == 503, metrics(profile.url)
        assert [f.result() for f in first] == [200, 200]
    after = metrics(profile.url)
    assert after["pool"]["timeouts"] == 1
    assert after["endpoints"]["profile_get"]["errors"] == 1
