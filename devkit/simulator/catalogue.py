"""A deterministic (seeded) product catalogue shaped like a Shopify store's.

Ids follow Shopify's look (large integers that grow with creation time): products from
7,000,000,000,000, variants from 40,000,000,000,000, inventory items from 42,000,000,000,000.
Names, vendors and handles are synthetic. Nothing here does I/O.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property

import numpy as np

PRODUCT_ID_BASE = 7_000_000_000_000
VARIANT_ID_BASE = 40_000_000_000_000
INVENTORY_ITEM_ID_BASE = 42_000_000_000_000


@dataclass(frozen=True)
class ProductType:
    """A kind of product: its price level, its option axis and when in the year it sells best."""

    name: str
    code: str
    base_price: float
    option_name: str
    option_values: tuple[str, ...]
    season_peak_doy: int  # day of year of the seasonal peak
    season_amplitude: float  # relative swing of the yearly cycle (0 = flat)
    grams: int


PRODUCT_TYPES: tuple[ProductType, ...] = (
    ProductType("T-Shirt", "TSH", 24.0, "Size", ("S", "M", "L", "XL"), 185, 0.30, 180),
    ProductType("Hoodie", "HOD", 54.0, "Size", ("S", "M", "L", "XL"), 355, 0.50, 620),
    ProductType("Mug", "MUG", 16.0, "Colour", ("White", "Black", "Sage"), 350, 0.30, 350),
    ProductType("Poster", "PST", 28.0, "Size", ("A3", "A2", "A1"), 330, 0.10, 200),
    ProductType("Candle", "CDL", 22.0, "Scent", ("Cedar", "Fig", "Linen"), 340, 0.40, 300),
    ProductType("Tote Bag", "TOT", 19.0, "Colour", ("Natural", "Black"), 160, 0.20, 150),
    ProductType("Cap", "CAP", 26.0, "Colour", ("Navy", "Olive", "Sand"), 170, 0.30, 120),
    ProductType("Socks", "SCK", 12.0, "Size", ("S/M", "L/XL"), 345, 0.35, 60),
    ProductType("Notebook", "NTB", 14.0, "Style", ("Lined", "Dotted", "Blank"), 245, 0.30, 250),
    ProductType("Water Bottle", "BTL", 29.0, "Colour", ("Steel", "Black", "Teal"), 190, 0.35, 400),
)

VENDORS: tuple[str, ...] = (
    "Example Outfitters",
    "Northwind Goods",
    "Sample & Co",
    "Placeholder Studio",
    "Demo Supply",
)
_DESIGNS: tuple[str, ...] = (
    "Mountain Sunrise",
    "Ocean Drift",
    "City Lights",
    "Forest Trail",
    "Desert Bloom",
    "Northern Star",
    "Paper Crane",
    "Golden Hour",
    "Retro Wave",
    "Quiet Harbor",
    "Wild Fern",
    "Night Market",
    "Summer Field",
    "Stone Arch",
    "Blue Lagoon",
    "Copper Sky",
    "Winter Pine",
    "Coral Reef",
    "Misty Lake",
    "Autumn Leaf",
    "Solar Flare",
    "Hidden Valley",
    "River Bend",
    "Moon Garden",
)
_ADJECTIVES: tuple[str, ...] = (
    "Classic",
    "Organic",
    "Everyday",
    "Heavyweight",
    "Limited",
    "Vintage",
    "Essential",
)
_TAGS: tuple[str, ...] = ("new", "bestseller", "eco", "gift", "limited", "sale-eligible", "staff-pick")


@dataclass(frozen=True)
class Variant:
    """One sellable variant (SKU) of a product."""

    id: int
    product_id: int
    title: str  # the option value, e.g. "M"; "Default Title" for single-variant products
    position: int
    sku: str
    price: Decimal
    compare_at_price: Decimal | None
    inventory_item_id: int
    created_at: datetime
    grams: int


@dataclass(frozen=True)
class Product:
    """A product with its variants (1 to 4)."""

    id: int
    title: str
    handle: str
    body_html: str
    vendor: str
    product_type: str
    tags: tuple[str, ...]
    created_at: datetime
    option_name: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Catalogue:
    """All products of the simulated store, ordered by id (= creation time)."""

    products: tuple[Product, ...]
    seed: int
    product_types: tuple[ProductType, ...] = PRODUCT_TYPES

    @cached_property
    def variants(self) -> tuple[Variant, ...]:
        """Every variant, in product order then position."""
        return tuple(v for p in self.products for v in p.variants)

    @cached_property
    def product_by_id(self) -> dict[int, Product]:
        return {p.id: p for p in self.products}

    @cached_property
    def variant_index(self) -> dict[int, int]:
        """Variant id -> column index in the demand arrays."""
        return {v.id: i for i, v in enumerate(self.variants)}

    @cached_property
    def variant_ids(self) -> np.ndarray:
        return np.array([v.id for v in self.variants], dtype=np.int64)

    @cached_property
    def product_ids(self) -> np.ndarray:
        """The product id of each variant (aligned with ``variant_ids``)."""
        return np.array([v.product_id for v in self.variants], dtype=np.int64)

    @cached_property
    def base_prices(self) -> np.ndarray:
        return np.array([float(v.price) for v in self.variants], dtype=np.float64)

    @cached_property
    def product_type_index(self) -> np.ndarray:
        """Index into ``product_types`` of each variant's product type."""
        names = {t.name: i for i, t in enumerate(self.product_types)}
        by_product = {p.id: names[p.product_type] for p in self.products}
        return np.array([by_product[v.product_id] for v in self.variants], dtype=np.int16)

    @cached_property
    def product_position(self) -> np.ndarray:
        """Index of each variant's product in ``products`` (aligned with ``variant_ids``)."""
        pos = {p.id: i for i, p in enumerate(self.products)}
        return np.array([pos[v.product_id] for v in self.variants], dtype=np.int32)

    def created_dates(self) -> np.ndarray:
        """Each variant's creation date (UTC) as ``datetime64[D]``."""
        return np.array([v.created_at.date() for v in self.variants], dtype="datetime64[D]")


@dataclass(frozen=True)
class _Draft:
    created: datetime
    ptype: ProductType
    title: str
    handle: str
    vendor: str
    price: Decimal
    compare: Decimal | None
    values: tuple[str, ...]
    tags: tuple[str, ...]
    design: str


def _price_point(value: float) -> Decimal:
    """Round to a retail price point: whole units ending in .00, .50, .95 or .99."""
    whole = max(1, int(value))
    ending = random.Random(whole).choice(("0.00", "0.50", "0.95", "0.99"))
    return Decimal(whole) + Decimal(ending)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _utc(day: date, seconds: int) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC) + timedelta(seconds=seconds)


def build_catalogue(
    n_variants: int,
    seed: int = 0,
    start: date = date(2024, 1, 1),
    end: date | None = None,
    launch_fraction: float = 0.08,
    product_types: Sequence[ProductType] = PRODUCT_TYPES,
) -> Catalogue:
    """A store with exactly ``n_variants`` variants, the same for the same arguments.

    Most products exist before ``start`` (created 1 month to 2.5 years earlier);
    ``launch_fraction`` of them launch between ``start`` and ``end`` (new products: no sales
    before their ``created_at``).
    """
    if n_variants < 1:
        raise ValueError("n_variants must be at least 1")
    rng = random.Random(seed * 1_000_003 + 17)
    end = end or start + timedelta(days=365)
    launch_window = max(1, (end - start).days - 30)
    drafts: list[_Draft] = []
    remaining = n_variants
    handles: set[str] = set()
    while remaining > 0:
        ptype = rng.choice(tuple(product_types))
        k = min(remaining, rng.choice((1, 2, 2, 3, 3, 4)), len(ptype.option_values))
        remaining -= k
        design = rng.choice(_DESIGNS)
        adjective = rng.choice(_ADJECTIVES)
        title = f"{adjective} {design} {ptype.name}"
        handle = _slug(title)
        n = 2
        while handle in handles:
            handle = f"{_slug(title)}-{n}"
            n += 1
        handles.add(handle)
        if rng.random() < launch_fraction:
            created = _utc(
                start + timedelta(days=rng.randrange(launch_window)), rng.randrange(8 * 3600, 18 * 3600)
            )
        else:
            created = _utc(start - timedelta(days=rng.randrange(30, 900)), rng.randrange(86_400))
        price = _price_point(ptype.base_price * rng.lognormvariate(0.0, 0.25))
        compare: Decimal | None = None
        if rng.random() < 0.2:
            compare = _price_point(float(price) * rng.uniform(1.2, 1.4))
        values = (
            ptype.option_values
            if k == len(ptype.option_values)
            else tuple(sorted(rng.sample(ptype.option_values, k), key=ptype.option_values.index))
        )
        tags = tuple(sorted(rng.sample(_TAGS, rng.randrange(0, 3))))
        drafts.append(
            _Draft(created, ptype, title, handle, rng.choice(VENDORS), price, compare, values, tags, design)
        )
    drafts.sort(key=lambda d: d.created)
    products: list[Product] = []
    product_id = PRODUCT_ID_BASE + rng.randrange(1_000_000, 9_000_000)
    variant_id = VARIANT_ID_BASE + rng.randrange(1_000_000, 9_000_000)
    item_id = INVENTORY_ITEM_ID_BASE + rng.randrange(1_000_000, 9_000_000)
    for index, d in enumerate(drafts):
        ptype, created, price, compare = d.ptype, d.created, d.price, d.compare
        product_id += rng.randrange(1_000, 500_000)
        single = len(d.values) == 1 and rng.random() < 0.5
        variants: list[Variant] = []
        for position, value in enumerate(d.values, start=1):
            variant_id += rng.randrange(1_000, 500_000)
            item_id += rng.randrange(1_000, 500_000)
            # Bigger sizes cost a little more, as in many apparel stores.
            bump = Decimal("2.00") if value in ("XL", "A1", "L/XL") else Decimal("0.00")
            option_code = _slug(str(value)).upper().replace("-", "")[:3] if not single else "STD"
            variants.append(
                Variant(
                    id=variant_id,
                    product_id=product_id,
                    title="Default Title" if single else str(value),
                    position=position,
                    sku=f"{ptype.code}-{index + 1:05d}-{option_code}",
                    price=price + bump,
                    compare_at_price=None if compare is None else compare + bump,
                    inventory_item_id=item_id,
                    created_at=created,
                    grams=ptype.grams,
                )
            )
        products.append(
            Product(
                id=product_id,
                title=d.title,
                handle=d.handle,
                body_html=f"<p>{d.title}. Synthetic product of a simulated store ({d.design} design).</p>",
                vendor=d.vendor,
                product_type=ptype.name,
                tags=d.tags,
                created_at=created,
                option_name="Title" if single else ptype.option_name,
                variants=tuple(variants),
            )
        )
    return Catalogue(products=tuple(products), seed=seed, product_types=tuple(product_types))
