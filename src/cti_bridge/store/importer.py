"""``cti-bridge import customers|contracts|scripts FILE``: CSV or JSON, all or nothing.

A helpdesk exports its customers from a CRM or a spreadsheet and imports them again and
again. So an import is:

* idempotent: rows are matched on natural keys (a customer's external id, a contract's
  reference, a script's product and name), so the same file twice changes nothing and a
  corrected file updates in place; a script whose text changed gets a new version and the
  old one stays readable;
* the truth for what it lists: a customer's numbers and products become exactly those of
  the row (a column left out of the file is left alone); customers, contracts and scripts
  that are not in the file are never touched;
* all or nothing: the whole file is read and checked first, then written in one
  transaction; the first bad row stops it with its place (CSV line, JSON array index), the
  field and what is wrong, and nothing of the file is kept.

Formats and examples: docs/screen-pop.md and config/examples/. The file is attacker-
reachable text (exported from elsewhere): values are stored as text, never interpreted,
and messages quote them with ``repr`` so a line break in a value cannot forge a second
line of output.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import writing
from .models import Contract, Customer, CustomerNumber, CustomerProduct, Product, Script
from .numbers import normalize_number
from .records import clean_text

if TYPE_CHECKING:
    from . import Store

__all__ = ["KINDS", "ImportRejected", "import_file", "read_rows"]

KINDS = ("customers", "contracts", "scripts")
MAX_FILE = 256 * 1024 * 1024

_LIST_SEPARATORS = re.compile(r"[|;]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab and line breaks are fine
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,4})?")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,63}")
_COVERED = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class ImportRejected(ValueError):
    """The file cannot be imported; the message is one line and names the place."""

    user_facing = True


# --- reading rows --------------------------------------------------------------------------


@dataclass
class Row:
    where: str  # "line 4" (CSV) or "item [3]" (JSON)
    values: dict[str, Any]


def read_rows(path: str | os.PathLike[str], aliases: dict[str, str]) -> list[Row]:
    """Rows of a CSV or JSON file, columns renamed through ``aliases`` (every accepted
    name -> the field); unknown columns are refused, a typo must not drop data."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE:
            raise ImportRejected(f"{file.name}: larger than {MAX_FILE // 2**20} MB")
        data = file.read_bytes()
    except OSError as error:
        raise ImportRejected(f"{file.name}: cannot read: {error.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportRejected(f"{file.name}: not UTF-8 text (byte {error.start})") from None
    suffix = file.suffix.lower()
    is_json = suffix == ".json" or (suffix != ".csv" and text.lstrip()[:1] in ("[", "{"))
    rows = _json_rows(text, file.name) if is_json else _csv_rows(text, file.name)
    for row in rows:
        renamed: dict[str, Any] = {}
        for key, value in row.values.items():
            name = aliases.get(_column(key))
            if name is None:
                raise ImportRejected(f"{file.name} {row.where}: unknown column {key[:40]!r}")
            if name in renamed:
                raise ImportRejected(f"{file.name} {row.where}: {name} given twice")
            renamed[name] = value
        row.values = renamed
    return rows


def _column(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def _json_rows(text: str, name: str) -> list[Row]:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ImportRejected(f"{name}: not valid JSON: {str(error)[:120]}") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"customers": [...]}
    if not isinstance(data, list):
        raise ImportRejected(f"{name}: expected a JSON array of objects")
    rows = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ImportRejected(f"{name} item [{index}]: not an object")
        rows.append(Row(f"item [{index}]", dict(item)))
    return rows


def _csv_rows(text: str, name: str) -> list[Row]:
    first = text.split("\n", 1)[0]
    try:
        delimiter = csv.Sniffer().sniff(first, delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[Row] = []
    header: list[str] | None = None
    while True:
        line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise ImportRejected(f"{name} line {line}: {error}") from None
        if not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [cell.strip() for cell in record]
            continue
        if len(record) > len(header):
            raise ImportRejected(
                f"{name} line {line}: {len(record)} fields, the header has {len(header)}"
            )
        values = {key: cell for key, cell in zip(header, record, strict=False) if key}
        rows.append(Row(f"line {line}", values))
    if header is None:
        raise ImportRejected(f"{name}: empty file")
    return rows


# --- checking values -------------------------------------------------------------------------


class _Bad(Exception):
    """A value is wrong; turned into ImportRejected with the file and the row."""

    def __init__(self, column: str, problem: str):
        super().__init__(f"{column}: {problem}")


def _text(
    values: dict[str, Any], key: str, limit: int, *, required: bool = False, lines: bool = False
) -> str | None:
    raw = values.get(key)
    if isinstance(raw, bool) or not isinstance(raw, str | int | type(None)):
        raise _Bad(key, "must be text")
    value = None if raw is None else str(raw).strip()
    if not value:
        if required:
            raise _Bad(key, "missing")
        return None
    if len(value) > limit:
        raise _Bad(key, f"longer than {limit} characters")
    if (_CONTROL_IN_TEXT if lines else _CONTROL).search(value):
        raise _Bad(key, "contains control characters")
    return clean_text(value, limit)


def _list(values: dict[str, Any], key: str) -> list[Any]:
    raw = values.get(key)
    if raw is None:
        return []
    if isinstance(raw, list):
        return raw
    if isinstance(raw, str):
        return [part.strip() for part in _LIST_SEPARATORS.split(raw) if part.strip()]
    raise _Bad(key, "must be a list or text separated by | or ;")


def _date(values: dict[str, Any], key: str, *, required: bool = False) -> date | None:
    text = _text(values, key, 32, required=required)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _Bad(key, f"{text!r} is not a date (YYYY-MM-DD)") from None


def _code(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _CODE.fullmatch(value.strip()):
        raise _Bad(key, f"{str(value)[:40]!r} is not a product code (letters, digits, ._/+-)")
    return value.strip()


@dataclass
class _Product:
    code: str
    name: str | None = None
    serial: str | None = None


def _products(values: dict[str, Any]) -> list[_Product]:
    products: dict[str, _Product] = {}
    for item in _list(values, "products"):
        if isinstance(item, dict):
            product = _Product(
                _code(item.get("code"), "products"),
                _text(item, "name", 256),
                _text(item, "serial", 128),
            )
        else:
            code, _, serial = str(item).partition(":")
            product = _Product(_code(code, "products"), None, serial.strip()[:128] or None)
        products[product.code] = product
    return list(products.values())


# --- the three kinds ------------------------------------------------------------------------


@dataclass
class _Plan:
    """One checked file, ready to write."""

    file: str
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def reject(self, where: str, problem: str) -> ImportRejected:
        return ImportRejected(f"{self.file} {where}: {problem}; nothing was imported")


CUSTOMER_COLUMNS = {
    "external_id": ("external_id", "external_ref", "id", "customer_id", "customer", "ref"),
    "name": ("name", "customer_name"),
    "company": ("company", "company_name"),
    "language": ("language", "lang"),
    "knowledge_level": ("knowledge_level", "knowledge", "level"),
    "tier": ("tier",),
    "timezone": ("timezone", "time_zone", "tz"),
    "notes": ("notes", "note"),
    "phone_numbers": ("phone_numbers", "phone_number", "phones", "phone", "numbers"),
    "products": ("products", "product"),
}
CONTRACT_COLUMNS = {
    "reference": ("reference", "contract", "contract_id", "contract_reference", "ref", "id"),
    "customer": ("customer", "customer_id", "customer_ref", "external_id"),
    "product": ("product", "product_code"),
    "product_name": ("product_name",),
    "covered": ("covered", "coverage", "interventions", "covered_interventions"),
    "service_level_hours": ("service_level_hours", "service_level", "sla_hours"),
    "valid_from": ("valid_from", "from", "start"),
    "valid_until": ("valid_until", "until", "end", "valid_to"),
    "notes": ("notes", "note"),
}
SCRIPT_COLUMNS = {
    "product": ("product", "product_code"),
    "product_name": ("product_name",),
    "name": ("name", "script", "key"),
    "title": ("title",),
    "body": ("body", "text", "content"),
}


def _aliases(columns: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {alias: name for name, names in columns.items() for alias in names}


def _check_customer(values: dict[str, Any], region: str) -> dict[str, Any]:
    checked: dict[str, Any] = {
        "external_id": _text(values, "external_id", 64, required=True),
        "name": _text(values, "name", 256, required=True),
        "company": _text(values, "company", 256),
        "knowledge_level": _text(values, "knowledge_level", 32),
        "tier": _text(values, "tier", 32),
        "notes": _text(values, "notes", 20_000, lines=True),
    }
    language = _text(values, "language", 16)
    if language is not None and not _LANGUAGE.fullmatch(language):
        raise _Bad("language", f"{language!r} is not a language code such as nl or fr_BE")
    checked["language"] = None if language is None else language.replace("-", "_")
    timezone = _text(values, "timezone", 64)
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise _Bad(
                "timezone", f"{timezone!r} is not a time zone such as Europe/Brussels"
            ) from None
    checked["timezone"] = timezone
    numbers: dict[str, str] = {}
    for raw in _list(values, "phone_numbers"):
        text = str(raw).strip() if isinstance(raw, str | int) else ""
        e164 = normalize_number(text, region) if text else None
        if e164 is None:
            raise _Bad("phone_numbers", f"{str(raw)[:40]!r} is not a phone number")
        numbers.setdefault(e164, clean_text(text, 64) or e164)
    checked["phone_numbers"] = numbers
    checked["products"] = _products(values)
    return {k: v for k, v in checked.items() if k in values or k in ("external_id", "name")}


def _check_contract(values: dict[str, Any], region: str) -> dict[str, Any]:
    covered = []
    for item in _list(values, "covered"):
        token = re.sub(r"\s+", "_", str(item).strip().lower())
        if not _COVERED.fullmatch(token):
            raise _Bad("covered", f"{str(item)[:40]!r} is not an intervention name")
        if token not in covered:
            covered.append(token)
    hours_raw = values.get("service_level_hours")
    hours = None
    if hours_raw not in (None, ""):
        try:
            hours = int(str(hours_raw).strip())
        except ValueError:
            raise _Bad(
                "service_level_hours", f"{str(hours_raw)[:20]!r} is not a whole number"
            ) from None
        if not 0 < hours <= 10_000:
            raise _Bad("service_level_hours", "must be between 1 and 10000")
    product = values.get("product")
    valid_from = _date(values, "valid_from", required=True)
    valid_until = _date(values, "valid_until")
    if valid_until is not None and valid_from is not None and valid_until < valid_from:
        raise _Bad("valid_until", "before valid_from")
    return {
        "reference": _text(values, "reference", 64, required=True),
        "customer": _text(values, "customer", 64, required=True),
        "product": None if product in (None, "") else _code(product, "product"),
        "product_name": _text(values, "product_name", 256),
        "covered": covered,
        "service_level_hours": hours,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "notes": _text(values, "notes", 20_000, lines=True),
    }


def _check_script(values: dict[str, Any], region: str) -> dict[str, Any]:
    name = _text(values, "name", 128, required=True)
    return {
        "product": _code(values.get("product"), "product"),
        "product_name": _text(values, "product_name", 256),
        "name": name,
        "title": _text(values, "title", 256) or name,
        "body": _text(values, "body", 200_000, required=True, lines=True),
    }


_CHECKS: dict[
    str, tuple[dict[str, tuple[str, ...]], Callable[[dict[str, Any], str], dict[str, Any]]]
] = {
    "customers": (CUSTOMER_COLUMNS, _check_customer),
    "contracts": (CONTRACT_COLUMNS, _check_contract),
    "scripts": (SCRIPT_COLUMNS, _check_script),
}


def import_file(store: Store, kind: str, path: str | os.PathLike[str]) -> int:
    """Import ``path`` as ``kind``; returns how many rows it had. Raises ImportRejected."""
    if kind not in _CHECKS:
        raise ImportRejected(f"cannot import {kind!r}: choose one of {', '.join(KINDS)}")
    columns, check = _CHECKS[kind]
    plan = _Plan(Path(path).name)
    region = store.customers.default_region
    for row in read_rows(path, _aliases(columns)):
        try:
            plan.rows.append((row.where, check(row.values, region)))
        except _Bad as error:
            raise plan.reject(row.where, str(error)) from None
    write = {"customers": _write_customers, "contracts": _write_contracts}.get(kind, _write_scripts)
    with writing(store.sessions) as session:
        write(session, plan, store.customers.now())
    return len(plan.rows)


# --- writing --------------------------------------------------------------------------------


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _product_ids(session: Session, products: Iterable[_Product]) -> dict[str, int]:
    """Products by code, created when new; a name given in the file renames it."""
    wanted: dict[str, str | None] = {}
    for product in products:
        if product.name or product.code not in wanted:
            wanted[product.code] = product.name or wanted.get(product.code)
    found: dict[str, Product] = {}
    for codes in _chunks(sorted(wanted)):
        found.update(
            (p.code, p) for p in session.scalars(select(Product).where(Product.code.in_(codes)))
        )
    for code, name in wanted.items():
        if code not in found:
            found[code] = Product(code=code, name=name or code)
            session.add(found[code])
        elif name and found[code].name != name:
            found[code].name = name
    session.flush()
    return {code: product.id for code, product in found.items()}


def _write_customers(session: Session, plan: _Plan, now: datetime) -> None:
    listed: dict[str, str] = {}  # external id -> where
    owner_in_file: dict[str, str] = {}  # E.164 -> external id of the row that lists it
    for where, row in plan.rows:
        ref = row["external_id"]
        if ref in listed:
            raise plan.reject(where, f"external_id {ref!r} also on {listed[ref]}")
        listed[ref] = where
        for number in row.get("phone_numbers", {}):
            if number in owner_in_file:
                other = owner_in_file[number]
                raise plan.reject(where, f"phone_numbers: {number} is also {other!r}'s")
            owner_in_file[number] = ref
    writer = _CustomerWriter(session, plan, now)
    writer.load(sorted(listed), sorted(owner_in_file))
    product_ids = _product_ids(
        session, (p for _, row in plan.rows for p in row.get("products", []))
    )
    for where, row in plan.rows:
        customer = writer.customer(row)
        if "phone_numbers" in row:
            writer.numbers_of(where, customer, row["phone_numbers"])
        if "products" in row:
            writer.products_of(customer, row["products"], product_ids)
    session.flush()


class _CustomerWriter:
    FIELDS = ("name", "company", "language", "knowledge_level", "tier", "timezone", "notes")

    def __init__(self, session: Session, plan: _Plan, now: datetime):
        self.session = session
        self.plan = plan
        self.now = now
        self.customers: dict[str, Customer] = {}  # by external id
        self.numbers: dict[str, CustomerNumber] = {}  # the file's numbers that exist, by E.164
        self.in_file: set[int] = set()  # ids of the file's customers

    def load(self, refs: Sequence[str], numbers: Sequence[str]) -> None:
        for chunk in _chunks(refs):
            query = select(Customer).where(Customer.external_ref.in_(chunk))
            self.customers.update((c.external_ref or "", c) for c in self.session.scalars(query))
        for chunk in _chunks(numbers):
            owned = select(CustomerNumber).where(CustomerNumber.number.in_(chunk))
            self.numbers.update((n.number, n) for n in self.session.scalars(owned))
        self.in_file = {c.id for c in self.customers.values()}

    def customer(self, row: dict[str, Any]) -> Customer:
        ref = row["external_id"]
        customer = self.customers.get(ref)
        if customer is None:
            customer = Customer(
                external_ref=ref, name=row["name"], created_at=self.now, updated_at=self.now
            )
            self.session.add(customer)
            self.session.flush()
            self.customers[ref] = customer
            self.in_file.add(customer.id)
        for key in self.FIELDS:
            if key in row and getattr(customer, key) != row[key]:
                setattr(customer, key, row[key])
                customer.updated_at = self.now
        return customer

    def numbers_of(self, where: str, customer: Customer, wanted: dict[str, str]) -> None:
        """The customer's numbers become ``wanted``. A number listed by another row of the
        file moves there; one of a customer outside the file is refused."""
        query = select(CustomerNumber).where(CustomerNumber.customer_id == customer.id)
        for row in self.session.scalars(query).all():
            if row.number not in wanted and row.number not in self.numbers:
                self.session.delete(row)  # (a number another row lists waits to move there)
        for e164, raw in wanted.items():
            existing = self.numbers.get(e164)
            if existing is None:
                added = CustomerNumber(customer_id=customer.id, number=e164, raw=raw)
                self.session.add(added)
                self.numbers[e164] = added
                continue
            if existing.customer_id != customer.id:
                if existing.customer_id not in self.in_file:
                    raise self.plan.reject(
                        where,
                        f"phone_numbers: {e164} belongs to customer #{existing.customer_id}, "
                        "who is not in this file",
                    )
                existing.customer_id = customer.id
            if existing.raw != raw:
                existing.raw = raw
        self.session.flush()

    def products_of(
        self, customer: Customer, wanted: list[_Product], product_ids: dict[str, int]
    ) -> None:
        query = select(CustomerProduct).where(CustomerProduct.customer_id == customer.id)
        current = {owned.product_id: owned for owned in self.session.scalars(query)}
        keep = {product_ids[p.code]: p for p in wanted}
        for product_id, owned in current.items():
            if product_id not in keep:
                self.session.delete(owned)
        for product_id, product in keep.items():
            existing = current.get(product_id)
            if existing is None:
                self.session.add(
                    CustomerProduct(
                        customer_id=customer.id, product_id=product_id, serial=product.serial
                    )
                )
            elif existing.serial != product.serial:
                existing.serial = product.serial


def _write_contracts(session: Session, plan: _Plan, now: datetime) -> None:
    seen: dict[str, str] = {}
    for where, row in plan.rows:
        if row["reference"] in seen:
            raise plan.reject(
                where, f"reference {row['reference']!r} also on {seen[row['reference']]}"
            )
        seen[row["reference"]] = where
    wanted = sorted({row["customer"] for _, row in plan.rows})
    customer_ids: dict[str, int] = {}
    for chunk in _chunks(wanted):
        query = select(Customer.external_ref, Customer.id).where(Customer.external_ref.in_(chunk))
        for ref, found in session.execute(query):
            if ref is not None:
                customer_ids[ref] = found
    contracts: dict[str, Contract] = {}
    for chunk in _chunks(sorted(seen)):
        contracts.update(
            (c.reference or "", c)
            for c in session.scalars(select(Contract).where(Contract.reference.in_(chunk)))
        )
    product_ids = _product_ids(
        session,
        (_Product(row["product"], row["product_name"]) for _, row in plan.rows if row["product"]),
    )
    for where, row in plan.rows:
        customer_id = customer_ids.get(row["customer"])
        if customer_id is None:
            raise plan.reject(
                where, f"customer: no customer {row['customer']!r} (import customers first)"
            )
        values = {
            "customer_id": customer_id,
            "product_id": product_ids[row["product"]] if row["product"] else None,
            "covered": row["covered"],
            "service_level_hours": row["service_level_hours"],
            "valid_from": row["valid_from"],
            "valid_until": row["valid_until"],
            "notes": row["notes"],
        }
        contract = contracts.get(row["reference"])
        if contract is None:
            session.add(Contract(reference=row["reference"], **values))
            continue
        for key, value in values.items():
            if getattr(contract, key) != value:
                setattr(contract, key, value)
    session.flush()


def _write_scripts(session: Session, plan: _Plan, now: datetime) -> None:
    seen: dict[tuple[str, str], str] = {}
    for where, row in plan.rows:
        key = (row["product"], row["name"])
        if key in seen:
            raise plan.reject(
                where, f"script {row['name']!r} of {row['product']} also on {seen[key]}"
            )
        seen[key] = where
    product_ids = _product_ids(
        session, (_Product(row["product"], row["product_name"]) for _, row in plan.rows)
    )
    for _, row in plan.rows:
        product_id = product_ids[row["product"]]
        latest = session.scalars(
            select(Script)
            .where(Script.product_id == product_id, Script.name == row["name"])
            .order_by(Script.version.desc())
            .limit(1)
        ).first()
        if latest is not None and (latest.title, latest.body) == (row["title"], row["body"]):
            continue  # unchanged: no new version
        version = (latest.version if latest is not None else 0) + 1
        session.add(
            Script(
                product_id=product_id,
                name=row["name"],
                version=version,
                title=row["title"],
                body=row["body"],
                created_at=now,
            )
        )
    session.flush()
