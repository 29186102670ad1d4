"""The demo target: a ``demo`` database with customers whose personal data and pasted secrets
must come back masked, plus an ``orders`` table that shows every JSON type rendering."""

from __future__ import annotations

import json
import random
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from psycopg import sql

from devhost.postgres import EmbeddedPostgres

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim", "Margaret",
         "Linus", "Sophie", "Yukihiro", "Guido", "Anita", "Niklaus", "Hedy", "John", "Katherine"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
        "Berners-Lee", "Hamilton", "Torvalds", "Wilson", "Matsumoto", "van Rossum", "Borg", "Wirth", "Lamarr",
        "Backus", "Johnson"]
DOMAINS = ["example.com", "mail.example.org", "contoso.com", "fabrikam.co.uk", "northwind.io"]
CARD_PREFIXES = ["4", "51", "52", "37", "6011"]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return digits + str((10 - total % 10) % 10)


def order_number(rng: random.Random) -> str:
    """A 16-digit order number that fails Luhn: a decoy the masking must leave alone."""
    valid = luhn_complete("9", 16, rng)
    return valid[:-1] + str((int(valid[-1]) + 1) % 10)


def phone(rng: random.Random) -> str:
    return rng.choice([
        lambda: f"+1 415-555-{rng.randrange(100, 200):04d}",
        lambda: f"(212) 555-{rng.randrange(1000, 9999)}",
        lambda: f"+44 20 7946 {rng.randrange(0, 999):04d}",
        lambda: f"+49 30 {rng.randrange(1000000, 9999999)}",
        lambda: "+33 1 " + " ".join(str(rng.randrange(10, 99)) for _ in range(4)),
    ])()


def note(i: int, rng: random.Random) -> str:
    fake_key = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    token = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(36))
    pw = "".join(rng.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(14))
    options = [
        "Prefers email contact.",
        f"Order #{order_number(rng)} shipped with build 2024.11.{i % 30}.",
        f"Support pasted their key: sk_live_{token[:24]} — rotate it!",
        f"Old integration used postgres://app_user:{pw}@db.internal:5432/orders",
        f"Config: Server=tcp:sql.contoso.net,1433;Database=crm;User ID=crm;Password={pw};Encrypt=true",
        f"AWS creds in ticket: AKIA{fake_key}",
        f"GitHub token found in a gist: ghp_{token}",
        f"VIP since {2015 + i % 9}; account manager {rng.choice(FIRST)}.",
        f"Request id {secrets.token_hex(16)} resolved.",
    ]
    return options[i % len(options)]


def seed_demo(pg: EmbeddedPostgres, agent_password: str, rows: int = 240, seed: int = 7) -> None:
    """Create the ``demo`` database, its tables and the broker's login role (idempotent)."""
    rng = random.Random(seed)
    with pg.admin() as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = 'demo'").fetchone():
            admin.execute("CREATE DATABASE demo")
        role = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'broker_agent'").fetchone()
        verb = sql.SQL("ALTER" if role else "CREATE")
        admin.execute(sql.SQL("{} ROLE broker_agent LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}")
                      .format(verb, sql.Literal(agent_password)))
    with pg.admin("demo") as db:
        db.execute("""
            CREATE TABLE IF NOT EXISTS customers (
                id integer PRIMARY KEY, name text NOT NULL, email text, phone text, card_number text,
                notes text, created_at timestamptz NOT NULL)""")
        db.execute("""
            CREATE TABLE IF NOT EXISTS orders (
                id bigint PRIMARY KEY, customer_id integer REFERENCES customers(id) ON DELETE SET NULL,
                amount numeric(12,2), status text, items jsonb, tags text[], shipped_on date, receipt bytea,
                placed_at timestamptz, fulfilment interval)""")
        if db.execute("SELECT count(*) FROM customers").fetchone()[0] == 0:
            base = datetime(2024, 1, 1, tzinfo=UTC)
            with db.cursor() as cur:
                for i in range(1, rows + 1):
                    first, last = rng.choice(FIRST), rng.choice(LAST)
                    email = f"{first.lower()}.{last.lower().replace(' ', '')}{i}@{rng.choice(DOMAINS)}"
                    card = luhn_complete(rng.choice(CARD_PREFIXES), 16, rng)
                    if i % 3 == 0:
                        card = " ".join(card[j:j + 4] for j in range(0, 16, 4))
                    cur.execute("INSERT INTO customers VALUES (%s, %s, %s, %s, %s, %s, %s)",
                                (i, f"{first} {last}", email, phone(rng), card, note(i, rng),
                                 base + timedelta(hours=i * 7, minutes=i)))
                for i in range(1, rows * 2 + 1):
                    cur.execute("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                                (1_000_000 + i, rng.randrange(1, rows + 1),
                                 Decimal(rng.randrange(100, 100000)) / 100,
                                 rng.choice(["new", "paid", "shipped", "refunded"]),
                                 json.dumps([{"sku": f"SKU-{rng.randrange(100, 999)}",
                                              "qty": rng.randrange(1, 5)}]),
                                 rng.sample(["gift", "express", "b2b", "fragile"], 2),
                                 (base + timedelta(days=i % 300)).date(),
                                 secrets.token_bytes(8), base + timedelta(hours=i * 3),
                                 timedelta(hours=rng.randrange(1, 96))))
        db.execute("GRANT CONNECT ON DATABASE demo TO broker_agent")
        db.execute("GRANT USAGE ON SCHEMA public TO broker_agent")
        db.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON customers, orders TO broker_agent")
