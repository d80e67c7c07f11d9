"""Deterministic, realistic seed rows for the demo databases.

The k6 scripts rely on these sizes and vocabularies: profile ids 1..PROFILE_COUNT,
notification users 1..NOTIFICATION_USERS, product CATEGORIES, job SEARCH_TERMS, shipping
ZONES (the country codes a quote may name).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from demo.traffic import PROFILE_IDS

PROFILE_COUNT = PROFILE_IDS
FOLLOWS_PER_PROFILE = 12
POSTS_PER_PROFILE = 4
JOB_COUNT = 600
PRODUCT_COUNT = 400
NOTIFICATION_USERS = 1000
NOTIFICATIONS_PER_USER = 8

EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)

FIRST = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Radia", "Guido", "Frances",
         "Edsger", "Hedy", "Tim", "Katherine", "Alan", "Joan", "Donald", "Sophie", "Bjarne", "Anita",
         "Priya", "Mateo", "Yuki", "Amara", "Lars", "Chen", "Fatima", "Olu", "Ines", "Ravi"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Perlman",
        "van Rossum", "Allen", "Dijkstra", "Lamarr", "Berners-Lee", "Johnson", "Turing", "Clarke",
        "Knuth", "Wilson", "Stroustrup", "Borg", "Sharma", "Garcia", "Tanaka", "Okafor", "Nilsson",
        "Wei", "Haddad", "Adeyemi", "Moreau", "Iyer"]
CITIES = ["Berlin", "London", "Lisbon", "Bangalore", "Toronto", "Austin", "Singapore", "Nairobi",
          "Sao Paulo", "Warsaw", "Amsterdam", "Seattle"]
ROLES = ["Backend Engineer", "Frontend Engineer", "Site Reliability Engineer", "Data Engineer",
         "Product Designer", "Engineering Manager", "Mobile Developer", "QA Automation Engineer",
         "Platform Engineer", "Security Engineer", "Machine Learning Engineer", "DevOps Engineer"]
SKILLS = ["python", "go", "rust", "typescript", "react", "postgres", "kafka", "kubernetes", "aws",
          "terraform", "k6", "grafana", "redis", "graphql", "swift", "kotlin", "spark", "figma"]
COMPANIES = ["Acme Cloud", "Northwind Labs", "Globex", "Initech", "Umbrella Health", "Hooli",
             "Stark Mobility", "Wayne Fintech", "Tyrell Data", "Cyberdyne Systems", "Soylent Foods",
             "Wonka Retail"]
SEARCH_TERMS = ["python", "backend", "remote", "kubernetes", "designer", "data", "senior", "go", "aws",
                "mobile", "security", "platform"]
CATEGORIES = ["laptops", "phones", "audio", "monitors", "keyboards", "cameras", "wearables", "gaming"]
NOUNS = {"laptops": "Laptop", "phones": "Phone", "audio": "Headphones", "monitors": "Monitor",
         "keyboards": "Keyboard", "cameras": "Camera", "wearables": "Watch", "gaming": "Controller"}
ADJECTIVES = ["Pro", "Air", "Max", "Mini", "Ultra", "Lite", "Plus", "Studio"]
BRANDS = ["Nimbus", "Vertex", "Orbit", "Quanta", "Pulse", "Zenith", "Nova", "Atlas"]
POST_LINES = [
    "Shipped a new release today; p95 latency down 40% after adding an index.",
    "Looking for recommendations on connection pool sizing for a bursty API.",
    "Our load tests found the bottleneck was the database, not the app servers.",
    "Hiring: two backend engineers who like observability.",
    "Wrote up how we moved from cron jobs to an event queue.",
    "Grafana dashboard of the week: saturation per endpoint.",
    "TIL: a cache with a 30 s TTL absorbed 80% of our read traffic.",
    "Pairing on a flaky test turned into a great lesson on time zones.",
    "Conference talk accepted! Topic: capacity planning with queueing theory.",
    "Retro notes: the incident was a missing timeout, as usual.",
]
NOTIFICATION_KINDS = {
    "message": ("New message from {who}", "{who} sent you a message about your application."),
    "job_alert": ("{n} new jobs match your alert", "New openings for {role} in {city}."),
    "order": ("Order #{n} shipped", "Your order is on its way and should arrive in 2-3 days."),
    "mention": ("{who} mentioned you", "{who} mentioned you in a post."),
    "system": ("Security check", "A new sign-in to your account from {city}."),
}


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def profile_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    for pid in range(1, PROFILE_COUNT + 1):
        first, last = _person(rng)
        role = rng.choice(ROLES)
        city = rng.choice(CITIES)
        yield {
            "id": pid,
            "username": f"{first.lower()}.{last.lower().replace(' ', '')}{pid}",
            "display_name": f"{first} {last}",
            "headline": f"{role} at {rng.choice(COMPANIES)}",
            "location": city,
            "bio": f"{role} in {city}. Into {', '.join(rng.sample(SKILLS, 2))} and load testing.",
            "skills": rng.sample(SKILLS, rng.randint(3, 6)),
            "followers": 0,
            "following": FOLLOWS_PER_PROFILE,
            "updated_at": EPOCH - timedelta(days=rng.randint(0, 400)),
        }


def follow_rows(rng: random.Random) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for pid in range(1, PROFILE_COUNT + 1):
        others: set[int] = set()
        while len(others) < FOLLOWS_PER_PROFILE:
            other = rng.randint(1, PROFILE_COUNT)
            if other != pid:
                others.add(other)
        rows.extend({"follower_id": pid, "followee_id": o} for o in sorted(others))
    return rows


def post_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    pid_post = 0
    for pid in range(1, PROFILE_COUNT + 1):
        for _ in range(POSTS_PER_PROFILE):
            pid_post += 1
            yield {
                "id": pid_post,
                "profile_id": pid,
                "body": rng.choice(POST_LINES),
                "likes": int(rng.paretovariate(1.5)) - 1,
                "created_at": EPOCH - timedelta(minutes=rng.randint(0, 60 * 24 * 90)),
            }


def job_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    for jid in range(1, JOB_COUNT + 1):
        role = rng.choice(ROLES)
        level = rng.choice(["Junior", "", "", "Senior", "Staff"])
        low = rng.randrange(45_000, 150_000, 5_000)
        remote = rng.random() < 0.4
        city = rng.choice(CITIES)
        tags = rng.sample(SKILLS, 3) + (["remote"] if remote else [])
        yield {
            "id": jid,
            "title": f"{level} {role}".strip(),
            "company": rng.choice(COMPANIES),
            "location": city,
            "remote": remote,
            "salary_min": low,
            "salary_max": low + rng.randrange(10_000, 60_000, 5_000),
            "tags": tags,
            "description": (f"Join our team in {city} as a {role.lower()}. You will work with "
                            f"{', '.join(tags[:3])} on systems that serve millions of requests a day."),
            "applications": 0,
            "posted_at": EPOCH - timedelta(hours=rng.randint(0, 24 * 60)),
        }


def product_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    for pid in range(1, PRODUCT_COUNT + 1):
        category = CATEGORIES[pid % len(CATEGORIES)]
        name = f"{rng.choice(BRANDS)} {NOUNS[category]} {rng.choice(ADJECTIVES)} {rng.randint(2, 9)}"
        yield {
            "id": pid,
            "sku": f"{category[:3].upper()}-{pid:05d}",
            "name": name,
            "category": category,
            "price_cents": rng.randrange(1_999, 249_999, 100),
            "stock": rng.randint(1_000_000, 2_000_000),
            "rating": rng.randint(28, 50),
            "description": f"The {name}: {rng.choice(['lightweight', 'durable', 'fast', 'quiet'])}, "
                           f"{rng.choice(['two-year warranty', 'free returns', 'ships in 24h'])}.",
        }


def notification_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    nid = 0
    for uid in range(1, NOTIFICATION_USERS + 1):
        for _ in range(NOTIFICATIONS_PER_USER):
            nid += 1
            yield notification(rng, nid, uid, EPOCH - timedelta(minutes=rng.randint(0, 60 * 24 * 30)),
                               read=rng.random() < 0.5)


def notification(rng: random.Random, nid: int | None, user_id: int, created_at: datetime,
                 read: bool = False, kind: str | None = None) -> dict[str, Any]:
    kind = kind if kind in NOTIFICATION_KINDS else rng.choice(sorted(NOTIFICATION_KINDS))
    title, body = NOTIFICATION_KINDS[kind]
    words = {"who": " ".join(_person(rng)), "n": rng.randint(2, 9999), "role": rng.choice(ROLES),
             "city": rng.choice(CITIES)}
    row: dict[str, Any] = {
        "user_id": user_id,
        "kind": kind,
        "title": title.format(**words),
        "body": body.format(**words),
        "read": read,
        "created_at": created_at,
    }
    if nid is not None:
        row["id"] = nid
    return row


CARRIERS = ["Parcelio", "SwiftPost", "Cargonaut", "Blue Freight"]
ZONES = ["DE", "FR", "GB", "US", "CA", "IN", "SG", "KE", "BR", "JP"]


def zone_of(country: str) -> str:
    """A country's rate zone: domestic-ish (EU), transatlantic, or far (everything else)."""
    if country in ("DE", "FR", "GB"):
        return "EU"
    if country in ("US", "CA"):
        return "NA"
    return "FAR"


def carrier_rate_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    rid = 0
    for carrier in CARRIERS:
        for zone, (base, per_kg, days) in {"EU": (490, 120, 2), "NA": (1490, 390, 5), "FAR": (2290, 610, 8)}.items():
            rid += 1
            yield {"id": rid, "carrier": carrier, "zone": zone, "base_cents": base + rng.randrange(0, 300, 10),
                   "per_kg_cents": per_kg + rng.randrange(0, 90, 5), "days": days + rng.randint(0, 2)}
