"""Tables of the demo services (SQLAlchemy Core). Each service owns its own set.

core-api: jobs, job_applications, products, carts, cart_items, orders, order_items,
notifications. profile-api: profiles, follows, posts. shipping-api: carrier_rates.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

core_metadata = MetaData()
profile_metadata = MetaData()
shipping_metadata = MetaData()

jobs = Table(
    "jobs", core_metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(120), nullable=False),
    Column("company", String(80), nullable=False),
    Column("location", String(80), nullable=False),
    Column("remote", Boolean, nullable=False),
    Column("salary_min", Integer, nullable=False),
    Column("salary_max", Integer, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("description", Text, nullable=False),
    Column("applications", Integer, nullable=False, default=0),
    Column("posted_at", DateTime(timezone=True), nullable=False),
    Index("ix_jobs_posted", "posted_at"),
    Index("ix_jobs_location", "location"),
)

job_applications = Table(
    "job_applications", core_metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("applicant", String(80), nullable=False),
    Column("cover_letter", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

products = Table(
    "products", core_metadata,
    Column("id", Integer, primary_key=True),
    Column("sku", String(32), nullable=False, unique=True),
    Column("name", String(120), nullable=False),
    Column("category", String(40), nullable=False),
    Column("price_cents", Integer, nullable=False),
    Column("stock", Integer, nullable=False),
    Column("rating", Integer, nullable=False),  # tenths of a star, 0..50
    Column("description", Text, nullable=False),
    Index("ix_products_category", "category"),
)

carts = Table(
    "carts", core_metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

cart_items = Table(
    "cart_items", core_metadata,
    Column("id", Integer, primary_key=True),
    Column("cart_id", Integer, ForeignKey("carts.id"), nullable=False, index=True),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
)

orders = Table(
    "orders", core_metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("cart_id", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("total_cents", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

order_items = Table(
    "order_items", core_metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False, index=True),
    Column("product_id", Integer, nullable=False),
    Column("name", String(120), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("price_cents", Integer, nullable=False),
)

notifications = Table(
    "notifications", core_metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("title", String(120), nullable=False),
    Column("body", Text, nullable=False),
    Column("read", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_notifications_user", "user_id", "created_at"),
)

profiles = Table(
    "profiles", profile_metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(40), nullable=False, unique=True),
    Column("display_name", String(80), nullable=False),
    Column("headline", String(120), nullable=False),
    Column("location", String(80), nullable=False),
    Column("bio", Text, nullable=False),
    Column("skills", JSON, nullable=False),
    Column("followers", Integer, nullable=False),
    Column("following", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

follows = Table(
    "follows", profile_metadata,
    Column("follower_id", Integer, ForeignKey("profiles.id"), primary_key=True),
    Column("followee_id", Integer, ForeignKey("profiles.id"), primary_key=True),
)

posts = Table(
    "posts", profile_metadata,
    Column("id", Integer, primary_key=True),
    Column("profile_id", Integer, ForeignKey("profiles.id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("likes", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_posts_author_time", "profile_id", "created_at"),
)

carrier_rates = Table(
    "carrier_rates", shipping_metadata,
    Column("id", Integer, primary_key=True),
    Column("carrier", String(40), nullable=False),
    Column("zone", String(8), nullable=False),
    Column("base_cents", Integer, nullable=False),
    Column("per_kg_cents", Integer, nullable=False),
    Column("days", Integer, nullable=False),
    Index("ix_carrier_rates_zone", "zone"),
)

METADATA = {"core-api": core_metadata, "profile-api": profile_metadata, "shipping-api": shipping_metadata}
# The table whose emptiness means "not seeded yet".
SEED_MARKER = {"core-api": notifications, "profile-api": profiles, "shipping-api": carrier_rates}
