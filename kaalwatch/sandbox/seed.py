"""Deterministic seeded shop data from ``--seed``: listings, personalization questions, images and receipts.

Encoding choices the document leaves open (and the client must tolerate), made here on purpose:

* An **unlabeled upload** answer is one ``variations`` entry whose ``formatted_value`` holds all the file
  URLs, separated by ``", "`` or by a newline (both appear).
* A **labeled upload** answer is one entry per file: ``formatted_name`` is ``"<question text>: <label>"``,
  ``formatted_value`` the URL.
* A skipped optional question on a new-style listing has no entry at all; on the legacy listing the single
  ``Personalization`` entry reads ``"Not requested on this item."`` and carries ``question_id: null``.
* Every receipt is in Etsy's served shape with the real-traffic quirks of NOTES.md: title-case ``status``,
  both ``create_timestamp``/``created_timestamp`` (and update/updated), HTML entities in buyer text,
  ``null`` and ``""`` both used for empty optional strings, ``buyer_email: null``.
"""

from __future__ import annotations

import html
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kaalwatch.sandbox import images
from kaalwatch.sandbox.shop import JSON, Shop

DAY = 86_400
PERSONALIZATION_PROPERTY_ID = 54
NOT_REQUESTED = "Not requested on this item."

# Listing ids are fixed so tests and docs can name them; receipts/transactions are numbered from the seed.
PET_LISTING = 1_500_000_001
FAMILY_LISTING = 1_500_000_002
COUPLE_LISTING = 1_500_000_003
LEGACY_LISTING = 1_500_000_004
ADDON_LISTING = 1_500_000_005

# Buyer text as an attacker (or a very unlucky shop) delivers it: markup, path tricks, emoji, bidi marks,
# pre-escaped entities. Only seeded with ``hostile=True`` (``kaalwatch sandbox --hostile``, ``demo --hostile``):
# the tests want it, a newcomer's first look at the demo does not.
HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "Zoë 🐶 Müller",
    "\u202eevil\u202c Smith",
    "O&#39;Brien",
]
# The same five seeded orders in a believable shop (Etsy's own quirks stay: pre-escaped apostrophes).
BELIEVABLE_NAMES = ["Hannah Weber", "Siobhán O&#39;Connor", "Zoë Müller", "Jonas Schmidt", "Maeve O&#39;Brien"]
PLAIN_NAMES = [
    "Alice Martin", "Bilal Khan", "Chloé Dubois", "Dmitri Ivanov", "Emma Johnson", "Farah Haddad",
    "Greta Lindqvist", "Hiro Tanaka", "Isabel García", "Jamal Wright", "Kaito Mori", "Lena Novak",
    "Mateo Rossi", "Nia Brown", "Oskar Berg", "Priya Patel",
]
MESSAGES = [
    None,
    "",
    "Please make it cozy!\r\nThanks so much :)",
    "It&#39;s for my mom&#39;s birthday &quot;Nana&quot; &amp; grandpa",
    "<b>bold?</b> <img src=x onerror=alert(1)>",
    "שלום! \u200fRTL note",
    "Can you add our cat too? 🐱🐱",
]
# As many entries as MESSAGES (and ANSWERS as HOSTILE_ANSWERS), so a seed picks the same orders either way.
BELIEVABLE_MESSAGES = [
    None,
    "",
    "Please make it cozy!\r\nThanks so much :)",
    "It&#39;s for my mom&#39;s birthday, she calls him &quot;Bear&quot; &amp; loves him to bits",
    "Could you keep the little white patch on his nose? It&#39;s his trademark.",
    "Is there any chance to have it by Friday? It&#39;s a surprise. Thank you!",
    "Can you add our cat too? 🐱",
]
HOSTILE_ANSWERS = ["Biscuit", "Sam &amp; Alex, 12.06.2021", "Luna 🌙", "Max &quot;the boss&quot;", "<i>Noodle</i>"]
ANSWERS = ["Biscuit", "Sam &amp; Alex, 12.06.2021", "Luna", "Max &quot;the boss&quot;", "Pepper"]


def money(amount: int, currency: str = "USD") -> JSON:
    """Etsy's money object (amount in minor units)."""
    return {"amount": amount, "divisor": 100, "currency_code": currency}


def _questions() -> dict[int, list[JSON]]:
    def q(qid: int, text: str, qtype: str, required: bool, *, instructions: str | None = None,
          chars: int | None = None, files: int | None = None, options: Sequence[str] = ()) -> JSON:
        return {
            "question_id": qid,
            "question_text": text,
            "instructions": instructions,
            "question_type": qtype,
            "required": required,
            "max_allowed_characters": chars,
            "max_allowed_files": files,
            "add_on_price": None,
            "options": [{"option_id": qid * 10 + i + 1, "label": o} for i, o in enumerate(options)] or None,
        }

    return {
        PET_LISTING: [
            q(7001, "Photos of your pet", "unlabeled_upload", True, files=10,
              instructions="Clear, well-lit photos; up to 10."),
            q(7002, "Pet&#39;s name (optional)", "text_input", False, chars=40),
            q(7003, "Background colour", "dropdown", True, options=["Sage", "Blush", "Navy", "Transparent"]),
        ],
        FAMILY_LISTING: [
            q(7101, "A photo of each person", "labeled_upload", True, files=6,
              instructions="Label each photo with the person's name."),
            q(7102, "Anything we should know?", "text_input", False, chars=256),
        ],
        COUPLE_LISTING: [
            q(7201, "Names & date", "text_input", True, chars=60, instructions="e.g. Sam & Alex, 12.06.2021"),
            q(7202, "Style", "dropdown", True, options=["Line art", "Watercolour", "Cartoon"]),
            q(7203, "Reference photo (optional)", "unlabeled_upload", False, files=2),
        ],
        LEGACY_LISTING: [
            q(6001, "Personalization", "text_input", False, chars=1024,
              instructions="Tell me the name and colours you'd like."),
        ],
    }


_LISTINGS: list[tuple[int, str, int, list[str]]] = [
    (PET_LISTING, "Custom Pet Portrait from Photo, Digital Dog &amp; Cat Art", 4500, ["pet portrait", "dog"]),
    (FAMILY_LISTING, "Custom Family Portrait, Digital Illustration from Photos", 6500, ["family portrait"]),
    (COUPLE_LISTING, "Couple Illustration, Personalized Anniversary Gift", 3800, ["couple", "anniversary"]),
    (LEGACY_LISTING, "Personalized Name Art (classic)", 1500, ["name art"]),
    (ADDON_LISTING, "Rush Processing Add-on", 1000, ["rush"]),
]


@dataclass
class Catalog:
    """Everything but receipts: the shop, listings, images, questions; plus the id counters."""

    user_id: int
    shop: JSON
    listings: dict[int, JSON]
    images: dict[int, list[JSON]]
    personalization: dict[int, JSON]
    buyers: list[int] = field(default_factory=list)


def build_catalog(seed: int, base_url: str, now: int) -> Catalog:
    """The shop, its five listings, their images and questions, deterministic from ``seed``."""
    rng = random.Random(seed)  # noqa: S311 - deterministic fake data, not crypto
    user_id = 60_000_000 + rng.randrange(1_000_000)
    shop_id = 30_000_000 + rng.randrange(1_000_000)
    opened = now - 900 * DAY
    shop = {
        "shop_id": shop_id, "user_id": user_id, "shop_name": "KaalStudioSandbox",
        "create_date": opened, "created_timestamp": opened,
        "title": "Made-to-order digital portraits", "announcement": "Custom portraits &amp; illustrations",
        "currency_code": "USD", "is_vacation": False, "vacation_message": None, "sale_message": None,
        "digital_sale_message": "Thank you! Your file is attached.", "update_date": now - DAY,
        "updated_timestamp": now - DAY, "listing_active_count": len(_LISTINGS),
        "digital_listing_count": len(_LISTINGS), "login_name": "kaalstudio", "accepts_custom_requests": True,
        "policy_welcome": None, "policy_payment": None, "policy_shipping": None, "policy_refunds": None,
        "policy_additional": None, "policy_seller_info": None, "policy_update_date": opened,
        "policy_has_private_receipt_info": False, "has_unstructured_policies": False, "policy_privacy": None,
        "vacation_autoreply": None, "url": "https://www.etsy.com/shop/KaalStudioSandbox",
        "image_url_760x100": None, "num_favorers": 321, "languages": ["en-US"], "icon_url_fullxfull": None,
        "is_using_structured_policies": True, "has_onboarded_structured_policies": True,
        "include_dispute_form_link": False, "is_direct_checkout_onboarded": True,
        "is_etsy_payments_onboarded": True, "is_calculated_eligible": False,
        "is_opted_in_to_buyer_promise": True, "is_shop_us_based": False, "transaction_sold_count": 1234,
        "shipping_from_country_iso": None, "shop_location_country_iso": "DE", "review_count": 210,
        "review_average": 4.9,
    }
    listings: dict[int, JSON] = {}
    imgs: dict[int, list[JSON]] = {}
    questions = _questions()
    for rank, (lid, title, price, tags) in enumerate(_LISTINGS):
        created = opened + rank * 30 * DAY
        listings[lid] = {
            "listing_id": lid, "user_id": user_id, "shop_id": shop_id, "title": title,
            "description": f"{title}.\n\nDigital file delivered through Etsy. No physical item is shipped.",
            "rich_description": None, "state": "active", "creation_timestamp": created,
            "created_timestamp": created, "ending_timestamp": now + 120 * DAY,
            "original_creation_timestamp": created, "last_modified_timestamp": now - 3 * DAY,
            "updated_timestamp": now - 3 * DAY, "state_timestamp": created, "quantity": 999,
            "shop_section_id": None, "featured_rank": rank, "url": f"https://www.etsy.com/listing/{lid}",
            "num_favorers": 10 + rank, "non_taxable": False, "is_taxable": True,
            "is_customizable": lid in questions, "is_personalizable": lid in questions,
            "listing_type": "download", "tags": tags, "materials": [], "shipping_profile_id": None,
            "return_policy_id": None, "processing_min": 3, "processing_max": 7, "who_made": "i_did",
            "when_made": "made_to_order", "is_supply": False, "item_weight": None, "item_weight_unit": None,
            "item_length": None, "item_width": None, "item_height": None, "item_dimensions_unit": None,
            "is_private": False, "style": [], "file_data": "", "has_variations": False,
            "should_auto_renew": True, "language": "en-US", "price": money(price), "converted_price": None,
            "taxonomy_id": 2078, "readiness_state_id": None, "suggested_title": None,
            "production_partners": [], "skus": [], "views": 100 + rank * 7,
        }
        imgs[lid] = [listing_image(base_url, lid, lid * 10 + i, i + 1, created) for i in range(2)]
    personalization = {lid: {"personalization_questions": qs} for lid, qs in questions.items()}
    buyers = [70_000_000 + rng.randrange(10_000_000) for _ in range(24)]
    return Catalog(user_id, shop, listings, imgs, personalization, buyers)


def listing_image(base_url: str, listing_id: int, image_id: int, rank: int, created: int) -> JSON:
    """A ListingImage whose URLs point at the sandbox's own ``/_files/il/`` route."""
    def url(size: str) -> str:
        return f"{base_url}/_files/il/{image_id}/{size}.jpg"

    return {
        "listing_id": listing_id, "listing_image_id": image_id, "hex_code": "7A9B76", "red": 122,
        "green": 155, "blue": 118, "hue": 110, "saturation": 24, "brightness": 60,
        "is_black_and_white": False, "creation_tsz": created, "created_timestamp": created, "rank": rank,
        "url_75x75": url("75x75"), "url_170x135": url("170x135"), "url_570xN": url("570xN"),
        "url_fullxfull": url("fullxfull"), "full_height": 1200, "full_width": 1500, "alt_text": None,
    }


IMAGE_SIZES = {"75x75": (75, 75), "170x135": (170, 135), "570xN": (570, 456), "fullxfull": (1500, 1200)}


@dataclass
class OrderSpec:
    """What a new order should look like; everything left ``None`` is chosen by the factory's RNG."""

    listing_id: int | None = None
    buyer_name: str | None = None
    answers: Mapping[int | str, str] | None = None
    uploads: int | Sequence[bytes] | None = None
    quantity: int = 1
    message: str | None = None
    is_gift: bool = False
    gift_message: str = ""
    extra_listing_ids: Sequence[int] = ()
    created: int | None = None
    upload_urls: Sequence[str] | None = None
    skip_optional: bool = False
    buyer_user_id: int | None = None  # a returning buyer (a Rush bought after the portrait)


class OrderFactory:
    """Builds receipts in Etsy's served shape and registers the buyer upload files they link to."""

    def __init__(self, shop: Shop, catalog: Catalog, base_url: str, seed: int,
                 now: Callable[[], int], *, hostile: bool = False) -> None:
        self.shop = shop
        self.hostile = hostile
        self.messages = MESSAGES if hostile else BELIEVABLE_MESSAGES
        self.answers = HOSTILE_ANSWERS if hostile else ANSWERS
        self.catalog = catalog
        self.base_url = base_url
        self.rng = random.Random(seed * 7919 + 1)  # noqa: S311 - deterministic fake data
        self.now = now
        self.next_receipt = 3_000_000_000 + (seed % 1000) * 1_000_000
        self.next_tx = 4_000_000_000 + (seed % 1000) * 1_000_000
        self.next_upload = 1
        self.token_rng = random.Random(seed * 104729 + 3)  # noqa: S311 - deterministic fake data

    def _upload(self, data: bytes | None) -> str:
        # Unguessable-looking path segment, like Etsy's signed CDN URLs (own RNG: stays deterministic).
        token = f"{self.token_rng.getrandbits(64):016x}"
        path = f"uploads/{token}/photo_{self.next_upload}.jpg"
        self.next_upload += 1
        key = path
        self.shop.files[path] = ("image/jpeg", data if data is not None else (lambda: images.render(key)))
        return f"{self.base_url}/_files/{path}"

    def _answers(self, listing_id: int, spec: OrderSpec) -> list[JSON]:
        qs = self.catalog.personalization.get(listing_id, {}).get("personalization_questions", [])
        given = dict(spec.answers or {})
        out: list[JSON] = []
        legacy = listing_id == LEGACY_LISTING
        for q in qs:
            qid, text, qtype = q["question_id"], q["question_text"], q["question_type"]
            answer = given.get(qid, given.get(text))
            skip = not q["required"] and (spec.skip_optional or (answer is None and self.rng.random() < 0.3))
            if qtype.endswith("upload"):
                if skip and spec.uploads is None and spec.upload_urls is None:
                    continue
                urls = self._upload_urls(q, spec)
                if qtype == "labeled_upload":
                    labels = ["Mum", "Dad", "Grandma", "Leo", "Mia", "Baby"]
                    out.extend(_variation(qid, f"{text}: {label}", url)
                               for label, url in zip(labels, urls, strict=False))
                else:
                    sep = ", " if self.rng.random() < 0.5 else "\n"
                    out.append(_variation(qid, text, sep.join(urls)))
                continue
            if answer is None and skip:
                if not legacy:
                    continue
                answer = NOT_REQUESTED
            elif answer is None:
                answer = self.rng.choice([o["label"] for o in q["options"]] if qtype == "dropdown" else self.answers)
            out.append(_variation(None, "Personalization", answer) if legacy else _variation(qid, text, answer))
        return out

    def _upload_urls(self, q: JSON, spec: OrderSpec) -> list[str]:
        if spec.upload_urls is not None:
            return list(spec.upload_urls)
        maximum = int(q["max_allowed_files"] or 1)
        if isinstance(spec.uploads, int):
            return [self._upload(None) for _ in range(min(spec.uploads, maximum))]
        if spec.uploads is not None:
            return [self._upload(bytes(d)) for d in list(spec.uploads)[:maximum]]
        low = 2 if q["question_type"] == "labeled_upload" else 1
        return [self._upload(None) for _ in range(self.rng.randint(low, min(4, maximum)))]

    def build(self, spec: OrderSpec) -> JSON:
        """A new paid receipt (status ``Paid``) built from ``spec``; not yet stored in the shop."""
        rng = self.rng
        cat = self.catalog
        now = self.now() if spec.created is None else spec.created
        listing_id = spec.listing_id or rng.choice([PET_LISTING, FAMILY_LISTING, COUPLE_LISTING, LEGACY_LISTING])
        if listing_id not in cat.listings:
            raise KeyError(f"unknown listing {listing_id}")
        receipt_id = self.next_receipt
        self.next_receipt += rng.randint(1, 97)
        buyer_id = rng.choice(cat.buyers)
        if spec.buyer_user_id is not None:
            buyer_id = spec.buyer_user_id
        name = spec.buyer_name if spec.buyer_name is not None else rng.choice(PLAIN_NAMES)
        txs = []
        for lid in [listing_id, *spec.extra_listing_ids]:
            listing = cat.listings[lid]
            self.next_tx += rng.randint(1, 13)
            txs.append({
                "transaction_id": self.next_tx, "title": listing["title"],
                "description": listing["description"], "seller_user_id": cat.user_id,
                "buyer_user_id": buyer_id, "create_timestamp": now, "created_timestamp": now,
                "paid_timestamp": now, "shipped_timestamp": None, "quantity": spec.quantity,
                "listing_image_id": cat.images[lid][0]["listing_image_id"], "receipt_id": receipt_id,
                "is_digital": True, "file_data": "", "listing_id": lid, "transaction_type": "listing",
                "product_id": lid + 7_000_000_000, "sku": rng.choice([None, ""]),
                "price": dict(listing["price"]), "shipping_cost": money(0),
                "variations": self._answers(lid, spec) if lid == listing_id else self._answers(lid, OrderSpec()),
                "product_data": [], "shipping_profile_id": None, "min_processing_days": 3,
                "max_processing_days": 7, "shipping_method": None, "shipping_upgrade": None,
                "expected_ship_date": now + 7 * DAY, "buyer_coupon": 0, "shop_coupon": 0,
            })
        subtotal = sum(t["price"]["amount"] * t["quantity"] for t in txs)
        tax = subtotal * 19 // 100
        empty = rng.choice([None, ""])
        return {
            "receipt_id": receipt_id, "receipt_type": 0, "seller_user_id": cat.user_id,
            "seller_email": "studio@example.com", "buyer_user_id": buyer_id, "buyer_email": None,
            "name": name, "first_line": None, "second_line": None, "city": empty, "state": None,
            "zip": empty, "status": "Paid", "formatted_address": empty, "country_iso": rng.choice(["US", "DE", "GB"]),
            "payment_method": "cc", "payment_email": None, "message_from_seller": None,
            "message_from_buyer": spec.message if spec.message is not None else rng.choice(self.messages),
            "message_from_payment": None, "is_paid": True, "is_shipped": False,
            "create_timestamp": now, "created_timestamp": now, "update_timestamp": now, "updated_timestamp": now,
            "is_gift": spec.is_gift, "gift_message": spec.gift_message, "gift_sender": "",
            "grandtotal": money(subtotal + tax), "subtotal": money(subtotal), "total_price": money(subtotal),
            "total_shipping_cost": money(0), "total_tax_cost": money(tax), "total_vat_cost": money(0),
            "discount_amt": money(0), "gift_wrap_price": money(0), "shipments": [], "transactions": txs,
            "refunds": [],
        }

    def add(self, spec: OrderSpec) -> JSON:
        """Build and store a new order."""
        with self.shop.lock:
            return self.shop.put_receipt(self.build(spec))


def _variation(question_id: int | None, name: str, value: str) -> JSON:
    return {"property_id": PERSONALIZATION_PROPERTY_ID, "value_id": None, "formatted_name": name,
            "formatted_value": value, "question_id": question_id}


def seed_receipts(factory: OrderFactory, now: int, extra: int = 0) -> None:
    """The seeded receipts: every status, gifts, multi-item, skipped optionals — and hostile buyer text when
    the factory was made with ``hostile=True`` (believable buyers otherwise).

    ``extra`` more receipts (plain paid/completed mix) are added for benchmarks.
    """
    shop, rng = factory.shop, factory.rng
    names = HOSTILE_NAMES if factory.hostile else BELIEVABLE_NAMES
    markup, rtl = (MESSAGES[4], MESSAGES[5]) if factory.hostile else (BELIEVABLE_MESSAGES[4], BELIEVABLE_MESSAGES[5])

    def day(n: int) -> int:
        return now - n * DAY - rng.randrange(60, 3600)  # never in the future

    def add(status: str | None = None, age: int = 1, **kw: Any) -> JSON:
        r = factory.add(OrderSpec(created=day(age), **kw))
        if status is not None:
            # Changes happened some hours after the order, not "now": keep timestamps plausible.
            changed = min(now, r["create_timestamp"] + 3 * 3600)
            r["update_timestamp"] = r["updated_timestamp"] = changed
            _apply_status(shop, r, status)
        return r

    add(age=1, listing_id=PET_LISTING, buyer_name=names[0], message=markup)
    add(age=1, listing_id=FAMILY_LISTING, uploads=3)
    add(age=2, listing_id=COUPLE_LISTING, skip_optional=True, buyer_name=names[2])
    add(age=2, listing_id=LEGACY_LISTING, skip_optional=True)
    add(age=3, listing_id=LEGACY_LISTING, answers={"Personalization": "Anna &amp; Ben, gold on navy"},
        buyer_name=names[4])
    add(age=3, listing_id=PET_LISTING, uploads=10, is_gift=True,
        gift_message="Happy birthday!&#39; Love, &quot;Sis&quot;\r\n❤️", buyer_name=names[1])
    add(age=4, listing_id=PET_LISTING, extra_listing_ids=[ADDON_LISTING, COUPLE_LISTING],
        buyer_name=names[3], message=rtl)
    add(age=4, listing_id=FAMILY_LISTING, is_gift=True, gift_message="")
    add(age=5, listing_id=PET_LISTING, skip_optional=True)
    add("Completed", age=8, listing_id=PET_LISTING)
    add("Completed", age=9, listing_id=COUPLE_LISTING)
    add("Completed", age=12, listing_id=FAMILY_LISTING, extra_listing_ids=[ADDON_LISTING])
    add("Canceled", age=6, listing_id=PET_LISTING)
    add("Fully Refunded", age=10, listing_id=COUPLE_LISTING)
    add("Partially Refunded", age=11, listing_id=FAMILY_LISTING)
    add("Completed", age=20, listing_id=LEGACY_LISTING)
    add(age=6, listing_id=COUPLE_LISTING, quantity=2)
    add("Payment Processing", age=0, listing_id=PET_LISTING, skip_optional=True)
    add("Completed", age=25, listing_id=PET_LISTING, is_gift=True, gift_message="For you 🎁")
    for i in range(extra):
        add("Completed" if rng.random() < 0.6 else None, age=30 + i % 700)


def _apply_status(shop: Shop, r: JSON, status: str) -> None:
    stamp = r["update_timestamp"]
    r["status"] = status
    if status == "Completed":
        r["is_shipped"] = True
        for tx in r["transactions"]:
            tx["shipped_timestamp"] = stamp
        shop.delivered.add(r["receipt_id"])
    elif status == "Payment Processing":
        r["is_paid"] = False
        for tx in r["transactions"]:
            tx["paid_timestamp"] = None
    elif status == "Canceled":
        r["refunds"].append(_refund(r, r["grandtotal"]["amount"], stamp, "Buyer asked to cancel"))
    elif status in ("Fully Refunded", "Partially Refunded"):
        full = status == "Fully Refunded"
        amount = r["grandtotal"]["amount"] if full else r["grandtotal"]["amount"] // 3
        r["refunds"].append(_refund(r, amount, stamp, html.escape("Buyer's pet passed away") if full else None))


def _refund(r: JSON, amount: int, stamp: int, reason: str | None) -> JSON:
    return {"amount": money(amount, r["grandtotal"]["currency_code"]), "created_timestamp": stamp,
            "reason": reason, "note_from_issuer": "", "status": "Complete"}


def hostile_urls(other_port: int) -> list[str]:
    """Upload URLs a client must refuse to fetch: another loopback port, private and link-local space."""
    return [
        f"http://127.0.0.1:{other_port}/private.jpg",
        "http://10.0.0.1/photo.jpg",
        "http://169.254.169.254/latest/meta-data/",
    ]
