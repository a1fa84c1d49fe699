"""Factories: the filtered, visibility-checked list and detail, CSV export, and programme edits."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from threading import Lock
from typing import Any

import orjson
from cachetools import TTLCache
from sqlalchemy import (
    ColumnElement,
    Engine,
    Integer,
    and_,
    bindparam,
    exists,
    func,
    or_,
    true,
    union_all,
)
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from src.db import flush_refused, utcnow
from src.models import Factory, SupplyChainLink
from src.models.compliance_summaries import RiskBand
from src.models.factories import (
    FactoryCreate,
    FactoryRead,
    FactoryStatus,
    FactoryUpdate,
)
from src.prepared_reads import PLAN_WITH_VALUES, Reader, Reads, read_with
from src.services.access import (
    CLIENT_STANDS,
    VISIBLE_ON,
    Principal,
    Visibility,
    active_on,
    factory_visible_bound,
    not_found_factory,
    standing_client,
    visibility_of,
    visibility_params,
    visible_chain_ids_bound,
    visible_links_bound,
)
from src.services.errors import Conflict, FieldError, InvalidInput
from src.services.events import EventType, emit
from src.services.pagination import Page, decode_cursor, encode_cursor

LIST_KIND = "factories"
CSV_COLUMNS = (
    "id", "programme_code", "name", "country", "address", "os_id", "sector", "workers_total",
    "workers_women", "status", "enrolled_on", "risk_band", "supplier_codes", "updated_at",
)  # fmt: skip
CSV_BATCH = 500


@dataclass(frozen=True)
class FactoryFilters:
    country: str | None = None
    status: FactoryStatus | None = None
    risk_band: RiskBand | None = None
    supply_chain: str | None = None
    os_id: str | None = None
    supplier_code: str | None = None
    q: str | None = None
    updated_since: dt.datetime | None = None


EncodedFactory = bytes
"""A factory as `FactoryRead` has it, encoded: its stored `item_json` with the caller's codes."""

# Not `updated_at`: converting it for every row was a tenth of a page on SQLite, and the cursor
# reads the last one's from its encoding. Not `risk_band` either: `item_json` has it.
_COLUMNS = (col(Factory.id), col(Factory.item_json))
_PAGE_ORDER = (col(Factory.updated_at), col(Factory.id))


def _link_exists(shape: Visibility, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(
        col(SupplyChainLink.factory_id) == col(Factory.id), visible_links_bound(shape), condition
    )


def _needle(q: str) -> str:
    return f"%{q.lower()}%"


# The filters on the caller's links, rather than on the factory.
_LINK_FILTERS: dict[str, ColumnElement[bool]] = {
    "supply_chain": col(SupplyChainLink.supply_chain_id) == bindparam("supply_chain"),
    "supplier_code": col(SupplyChainLink.supplier_code) == bindparam("supplier_code"),
}
_FILTERS: dict[str, tuple[Callable[[Visibility], ColumnElement[bool]], Callable[[Any], Any]]] = {
    "country": (lambda _: col(Factory.country) == bindparam("country"), str.upper),
    "status": (lambda _: col(Factory.status) == bindparam("status"), str),
    "risk_band": (lambda _: col(Factory.risk_band) == bindparam("risk_band"), str),
    "os_id": (lambda _: col(Factory.os_id) == bindparam("os_id"), str),
    "updated_since": (
        lambda _: col(Factory.updated_at) >= bindparam("updated_since"),
        lambda value: value,
    ),
    "supply_chain": (lambda shape: _link_exists(shape, _LINK_FILTERS["supply_chain"]), str),
    "supplier_code": (lambda shape: _link_exists(shape, _LINK_FILTERS["supplier_code"]), str),
    "q": (
        lambda _: or_(
            func.lower(Factory.name).like(bindparam("q")),
            func.lower(Factory.programme_code).like(bindparam("q")),
            func.lower(Factory.os_id).like(bindparam("q")),
        ),
        _needle,
    ),
}


def _through_links(shape: Visibility, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """The factory is one of those the caller's visible links (meeting `conditions`) lead to."""
    return col(Factory.id).in_(
        sa_select(col(SupplyChainLink.factory_id)).where(visible_links_bound(shape), *conditions)
    )


@cache
def _statement(
    shape: Visibility, filters: frozenset[str], *, page: bool, after: bool, few: bool = False
) -> Any:
    """The list (or, without `page`, the detail) statement for one shape of caller and filters,
    built once: every value is a bind parameter. With `few` the caller's factories are read
    through its links (those each link filter keeps) and sorted; otherwise the factories are
    walked in page order and each is checked (the programme's page; see `factory_page`)."""
    if few:
        # One set of links a link filter: two filters may be met through different links.
        link_filters = [_LINK_FILTERS[name] for name in sorted(filters & _LINK_FILTERS.keys())]
        conditions = [_through_links(shape, condition) for condition in link_filters] or [
            _through_links(shape)
        ]
        filters -= _LINK_FILTERS.keys()
    else:
        conditions = [factory_visible_bound(shape, col(Factory.id))]
    conditions += [_FILTERS[name][0](shape) for name in sorted(filters)]
    statement = sa_select(*_COLUMNS).where(*conditions)
    if not page:
        return statement.where(col(Factory.id) == bindparam("factory_id"))
    updated_at, factory_id = _PAGE_ORDER
    statement = statement.where(CLIENT_STANDS)
    if after:
        statement = statement.where(_after(updated_at, factory_id))
    # Planned for any caller, PostgreSQL settled on reading every visible factory and sorting
    # them (11-17 ms a page for a buyer seeing 2,497 factories, when such buyers were served
    # here); planned with its values, it walks or reads through the links as the caller needs.
    return (
        statement.where(updated_at <= bindparam("snapshot"))
        .order_by(*_PAGE_ORDER)
        .limit(bindparam("limit", type_=Integer))
        .execution_options(**{PLAN_WITH_VALUES: True})
    )


def _after(updated_at: Any, factory_id: Any) -> ColumnElement[bool]:
    """Past the cursor's row in page order."""
    return or_(
        updated_at > bindparam("after_updated_at"),
        and_(updated_at == bindparam("after_updated_at"), factory_id > bindparam("after_id")),
    )


def _chain_walk(
    shape: Visibility,
    filters: frozenset[str],
    *,
    after: bool,
    chain_id: Any,
    selected: tuple[Any, ...],
) -> Any:
    """The first `limit` rows of one chain's walk in page order, through
    `ix_supply_chain_links_page`, of the `selected` columns. A walk of the links alone
    (`_LINK_COLUMNS`) joins their factories only where its filters read them."""
    link = SupplyChainLink
    walk = sa_select(*selected)
    if filters or selected is not _LINK_COLUMNS:
        walk = walk.select_from(link).join(Factory, col(Factory.id) == col(link.factory_id))
    walk = (
        walk.where(
            col(link.supply_chain_id) == chain_id,
            active_on(link.starts_on, link.ends_on, VISIBLE_ON),  # type: ignore[arg-type]
            CLIENT_STANDS,
            col(link.factory_updated_at) <= bindparam("snapshot"),
            *(_FILTERS[name][0](shape) for name in sorted(filters)),
        )
        .order_by(col(link.factory_updated_at), col(link.factory_id))
        .limit(bindparam("limit", type_=Integer))
    )
    if after:
        walk = walk.where(_after(col(link.factory_updated_at), col(link.factory_id)))
    return walk


_PAGE_ROW = (*_COLUMNS, col(SupplyChainLink.code_json))
# Selected from each chain's walk only to merge by: converting them for every row costs a tenth
# of a page on SQLite.
_MERGED_BY = (col(SupplyChainLink.factory_updated_at), col(SupplyChainLink.supply_chain_id))
_LINK_COLUMNS = (col(SupplyChainLink.factory_id), col(SupplyChainLink.code_json), *_MERGED_BY)


def _merged_in_page_order(walked: Any) -> Any:
    """SQLite: every row of several chains' walks (`walked`, of `_PAGE_ROW` and `_MERGED_BY`),
    in page order: a factory in two chains comes once from each, one after the other. At most
    `WALKED_CHAINS_AT_MOST` walks of `limit` rows each; ranking them to send fewer (as
    `_ranked_in_page_order` does) costs SQLite more than sending them."""
    return sa_select(*list(walked.c)[: -len(_MERGED_BY)]).order_by(
        walked.c.factory_updated_at, walked.c.id, walked.c.supply_chain_id
    )


def _ranked_in_page_order(walked: Any) -> Any:
    """PostgreSQL: the page's rows from several chains' walks of links (`walked`, of
    `_LINK_COLUMNS`), for the first `limit` factories in page order, each link joined to its
    factory. A factory among the first `limit` overall is among the first `limit` of each chain
    it is in, so its every code is kept; only those rows are joined and sent, however many
    chains gave `limit` links each (a caller may read hundreds)."""
    place = func.dense_rank().over(order_by=(walked.c.factory_updated_at, walked.c.factory_id))
    ranked = sa_select(walked, place.label("place")).subquery()
    return (
        sa_select(*_COLUMNS, ranked.c.code_json)
        .select_from(ranked)
        .join(Factory, col(Factory.id) == ranked.c.factory_id)
        .where(ranked.c.place <= bindparam("limit", type_=Integer))
        .order_by(ranked.c.factory_updated_at, ranked.c.factory_id, ranked.c.supply_chain_id)
    )


@cache
def _chains_walk_statement(
    shape: Visibility,
    filters: frozenset[str],
    *,
    after: bool,
    chains: int,
    postgresql: bool,
    as_seen: bool = False,
) -> Any:
    """The page read from the chains `chain_0`, `chain_1`... (those of them the caller sees), each
    walked in page order through `ix_supply_chain_links_page`: a chain's links carry their
    factory's `updated_at`, so a walk visits the caller's factories only, where walking the
    programme's factories checked ~4 for each one listed. With several chains each gives its
    first `limit` rows and the database merges them (on PostgreSQL the walks read links alone,
    and only the page's are joined to their factories: `_ranked_in_page_order`); a factory in
    two chains comes once from each, with that chain's supplier code, one after the other
    (`_merged`).

    `as_seen`: the chains are those a token naming none was seen with (`_seen`), and the
    statement answers nothing unless the caller sees exactly them still (`_sees_only`), so its
    rows need not each check their chain."""
    selected: tuple[Any, ...] = _PAGE_ROW
    if chains > 1:
        selected = _LINK_COLUMNS if postgresql else (*_PAGE_ROW, *_MERGED_BY)
    arms = [
        _chain_walk(
            shape, filters, after=after, chain_id=bindparam(f"chain_{number}"), selected=selected
        )
        for number in range(chains)
    ]
    if not as_seen:
        visible = col(SupplyChainLink.supply_chain_id).in_(visible_chain_ids_bound(shape))
        arms = [arm.where(visible) for arm in arms]
    statement = arms[0]
    if chains > 1:
        merged = union_all(*(arm.subquery().select() for arm in arms)).subquery()
        statement = _ranked_in_page_order(merged) if postgresql else _merged_in_page_order(merged)
    return statement.where(_sees_only(shape, chains)) if as_seen else statement


def _sees_only(shape: Visibility, chains: int) -> ColumnElement[bool]:
    """True while the chains the caller sees are `chain_0`... `chain_{chains - 1}`: none besides
    them (a chain added, or swapped for one of them) and as many (none withdrawn: a partner's
    delegation ended leaves its buyer's links, and the walk's rows do not check their chain)."""
    seen = visible_chain_ids_bound(shape).cte("seen_chains")
    walked: list[Any] = [bindparam(f"chain_{number}") for number in range(chains)]
    others = sa_select(seen.c.id).where(seen.c.id.not_in(walked))
    return and_(
        ~exists(others), sa_select(func.count()).select_from(seen).scalar_subquery() == chains
    )


@cache
def _lateral_walk_statement(shape: Visibility, filters: frozenset[str], *, after: bool) -> Any:
    """PostgreSQL: `_chains_walk_statement` over every chain the caller sees, found by the same
    statement, each chain walked by a `LATERAL` subquery: one round trip where finding the
    chains first took two. SQLite has no `LATERAL`."""
    chains = visible_chain_ids_bound(shape).subquery()
    walked = _chain_walk(
        shape, filters, after=after, chain_id=chains.c.id, selected=_LINK_COLUMNS
    ).lateral()
    walks = sa_select(walked).select_from(chains).join(walked, true())
    return _ranked_in_page_order(walks.subquery())


@cache
def _visible_chains_statement(shape: Visibility) -> Any:
    return visible_chain_ids_bound(shape)


def _filter_params(filters: FactoryFilters) -> dict[str, Any]:
    return {
        name: convert(value)
        for name, (_, convert) in _FILTERS.items()
        if (value := getattr(filters, name))
    }


@dataclass(frozen=True)
class _Seen:
    """What a caller sees: its links (of those the link filters keep) and its supply chains."""

    links: int
    chains: tuple[str, ...]


# What a caller sees changes slowly, and the figures only choose between plans that answer the
# same pages. Pages are read in the event loop and, for CSV exports, in threads: the cache
# takes a lock.
_SEEN: TTLCache[tuple[Any, ...], _Seen] = TTLCache(maxsize=4096, ttl=60)
_SEEN_LOCK = Lock()


@cache
def _seen_statement(shape: Visibility, link_filters: frozenset[str]) -> Any:
    """The chains the caller sees, each with how many links it sees (of those the link filters
    keep); no rows for a caller seeing no chain, and so no link."""
    chains = visible_chain_ids_bound(shape).subquery()
    links = sa_select(func.count()).select_from(SupplyChainLink).where(visible_links_bound(shape))
    for name in sorted(link_filters):
        links = links.where(_LINK_FILTERS[name])
    return sa_select(chains.c.id, links.scalar_subquery()).order_by(chains.c.id)


def _seen(principal: Principal, shape: Visibility, filters: dict[str, Any]) -> Reads[_Seen]:
    """What the caller sees, counted once a minute."""
    link_filters = {name: filters[name] for name in sorted(_LINK_FILTERS.keys() & filters)}
    key = (shape, principal.org_id, principal.supply_chain_ids, *link_filters.items())
    with _SEEN_LOCK:
        seen = _SEEN.get(key)
    if seen is None:
        rows = yield (
            _seen_statement(shape, frozenset(link_filters)),
            visibility_params(principal) | link_filters,
        )
        seen = _Seen(links=int(rows[0][1]) if rows else 0, chains=tuple(row[0] for row in rows))
        with _SEEN_LOCK:
            _SEEN[key] = seen
    return seen


@cache
def _codes_statement(shape: Visibility) -> Any:
    return (
        sa_select(col(SupplyChainLink.factory_id), col(SupplyChainLink.code_json))
        .where(
            col(SupplyChainLink.factory_id).in_(bindparam("factory_ids", expanding=True)),
            visible_links_bound(shape),
        )
        .order_by(col(SupplyChainLink.supply_chain_id))
    )


SupplierCodes = dict[str, list[bytes]]
"""The caller's supplier codes of each factory (each link's `code_json`), by factory id, in
supply chain order."""


def _codes(principal: Principal, rows: Sequence[Any]) -> Reads[SupplierCodes]:
    """The caller's own vendor ids for these rows' factories, fetched in one query."""
    codes: SupplierCodes = defaultdict(list)
    if not rows:
        return codes
    found = yield (
        _codes_statement(visibility_of(principal)),
        visibility_params(principal) | {"factory_ids": [row[0] for row in rows]},
    )
    for factory_id, code_json in found:
        codes[factory_id].append(code_json)
    return codes


def _merged(rows: Sequence[Any]) -> tuple[list[Any], SupplierCodes]:
    """The chains' walk as one row per factory, and each factory's supplier codes from its rows."""
    unique: list[Any] = []
    codes: SupplierCodes = {}
    for factory_id, item_json, code_json in rows:
        if factory_id in codes:
            codes[factory_id].append(code_json)
        else:
            codes[factory_id] = [code_json]
            unique.append((factory_id, item_json))
    return unique, codes


def _items(rows: Sequence[Any], codes: SupplierCodes) -> list[EncodedFactory]:
    """Each stored `item_json` with the caller's supplier codes, joined from stored encodings:
    its closing brace gives way to them."""
    return [
        b"".join(
            (item_json[:-1], b',"supplier_codes":[', b",".join(codes.get(factory_id, ())), b"]}")
        )
        for factory_id, item_json in rows
    ]


# Each chain walked is one arm of the page's statement (with the caller's named chains in each):
# a caller reading more is served by the walk over every factory, which checks each one.
WALKED_CHAINS_AT_MOST = 8


def _walk_chains(
    principal: Principal,
    shape: Visibility,
    filter_params: dict[str, Any],
    params: dict[str, Any],
    *,
    after: bool,
    postgresql: bool,
    limit: int,
    seen: _Seen,
) -> Reads[tuple[list[Any], SupplierCodes] | None]:
    """The page's rows and codes walked through the caller's chains' links; none past
    `WALKED_CHAINS_AT_MOST` chains, which the walk over every factory serves. The chains are
    those the token names, or the one a `supply_chain` filter names; for a token naming none,
    those its caller was seen with within the minute, walked at once, and only if that finds
    nothing (the walk has ended, or the caller's chains have changed) those it sees now."""
    names = frozenset(filter_params)
    only = filter_params.get("supply_chain")
    if principal.all_supply_chains and only is None:
        if len(seen.chains) <= WALKED_CHAINS_AT_MOST:
            rows = yield from _walked(
                shape, names, params, seen.chains, after=after, postgresql=postgresql, as_seen=True
            )
            if rows:
                return _merged(rows)
        if postgresql:
            return _merged((yield _lateral_walk_statement(shape, names, after=after), params))
        chains = [row[0] for row in (yield _visible_chains_statement(shape), params)]
    elif only is not None:
        # A chain the caller does not see gives no rows: the walk checks each row's chain.
        chains = [only] if principal.all_supply_chains or only in principal.supply_chain_ids else []
    else:
        chains = sorted(set(principal.supply_chain_ids))
    if len(chains) > WALKED_CHAINS_AT_MOST:
        return None
    walked = yield from _walked(
        shape, names - {"supply_chain"}, params, chains, after=after, postgresql=postgresql
    )
    rows, codes = _merged(walked)
    if only is not None:  # its rows hold only that chain's codes
        codes = yield from _codes(principal, rows[:limit])
    return rows, codes


def _walked(
    shape: Visibility,
    filters: frozenset[str],
    params: dict[str, Any],
    chains: Sequence[str],
    *,
    after: bool,
    postgresql: bool,
    as_seen: bool = False,
) -> Reads[list[Any]]:
    """The rows of `_chains_walk_statement` over these chains (none for no chain)."""
    if not chains:
        return []
    statement = _chains_walk_statement(
        shape, filters, after=after, chains=len(chains), postgresql=postgresql, as_seen=as_seen
    )
    chain_params = {f"chain_{number}": chain_id for number, chain_id in enumerate(chains)}
    rows: list[Any] = yield statement, params | chain_params
    return rows


@cache
def _last_change_statement() -> Any:
    # `max` reads the end of `ix_factories_updated_at_id`, in any plan.
    return sa_select(func.max(col(Factory.updated_at)))


def _still_current(snapshot: dt.datetime) -> Reads[dt.datetime | None]:
    """`snapshot` if it has passed and no factory has changed since, as a walk fixed there then
    lists what one fixed now would; otherwise None."""
    if snapshot > utcnow():
        return None
    rows = yield _last_change_statement(), {}
    last_change = rows[0][0]
    return snapshot if last_change is None or last_change <= snapshot else None


def factory_page(
    *,
    principal: Principal,
    filters: FactoryFilters,
    cursor: str | None,
    limit: int,
    postgresql: bool,
    kept_snapshot: dt.datetime | None = None,
) -> Reads[Page[EncodedFactory]]:
    """One page ordered by (`updated_at`, `id`), of a walk taken as a snapshot: the first page
    fixes the moment the walk started and later pages skip rows changed after it (a row edited
    during the walk is not listed twice; the next sync, from the newest `updated_at` seen,
    lists it). A first page the caller holds already names its moment (`kept_snapshot`, from
    its entity tag): the walk starts there again while it is still current (`_still_current`),
    so that the same page is the same bytes and a conditional GET answers 304.

    Three plans, the same pages: the programme walks every factory in page order; a caller
    seeing few links (at most `limit + 1`: reading them all costs no more than walking a chain
    for a page, and a lookup by supplier code reads its one link, where a walk checks each of
    the caller's factories for the code) has its factories read through them and sorted; any
    other walks its chains' links in page order (`_chains_walk_statement`): those its token
    names, or for a token naming none, those it was seen with within the minute, the statement
    checking they are still the caller's, or failing that those a first statement finds (on
    PostgreSQL, the same statement: `_lateral_walk_statement`); past `WALKED_CHAINS_AT_MOST`
    chains it walks every factory as the programme does, checking each.

    Each plan's statement also checks the caller's client (`CLIENT_STANDS`), so the route need
    not: only an empty page asks whether the client was revoked. The reads are run by the
    caller's reader (`read_with`, or `read_awaited` in the event loop)."""
    filter_params = _filter_params(filters)
    params = visibility_params(principal) | filter_params | {"limit": limit + 1}
    params["client_id"] = principal.client_id
    snapshot = None
    if cursor:
        decoded = decode_cursor(LIST_KIND, cursor, (dt.datetime, str))
        params["after_updated_at"], params["after_id"] = decoded.values
        snapshot = decoded.snapshot
    elif kept_snapshot is not None:
        snapshot = yield from _still_current(kept_snapshot)
    params["snapshot"] = snapshot = snapshot or utcnow()
    shape = visibility_of(principal)
    names, after = frozenset(filter_params), bool(cursor)
    seen = None if shape.admin else (yield from _seen(principal, shape, filter_params))
    few = seen is not None and seen.links <= limit + 1
    walked = None
    if seen is not None and not few:
        walked = yield from _walk_chains(
            principal, shape, filter_params, params,
            after=after, postgresql=postgresql, limit=limit, seen=seen,
        )  # fmt: skip
    if walked is None:
        rows = yield _statement(shape, names, page=True, after=after, few=few), params
        codes = yield from _codes(principal, rows[:limit])
    else:
        rows, codes = walked
    if not rows:
        yield from standing_client(principal.client_id)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last_id, last_item = rows[-1]
        updated_at = dt.datetime.fromisoformat(orjson.loads(last_item)["updated_at"])
        next_cursor = encode_cursor(LIST_KIND, (updated_at, last_id), snapshot)
    return Page(items=_items(rows, codes), next_cursor=next_cursor, snapshot=snapshot)


def list_factories(
    session: Session,
    *,
    principal: Principal,
    filters: FactoryFilters,
    cursor: str | None,
    limit: int,
) -> Page[FactoryRead]:
    page = read_with(
        Reader.of_session(session),
        factory_page(
            principal=principal,
            filters=filters,
            cursor=cursor,
            limit=limit,
            postgresql=session.get_bind().dialect.name == "postgresql",
        ),
    )
    return Page(
        items=[FactoryRead.model_validate_json(item) for item in page.items],
        next_cursor=page.next_cursor,
    )


def get_factory(session: Session, *, principal: Principal, factory_id: str) -> FactoryRead:
    reader = Reader.of_session(session)
    statement = _statement(visibility_of(principal), frozenset(), page=False, after=False)
    row = reader.first(statement, visibility_params(principal) | {"factory_id": factory_id})
    if row is None:
        raise not_found_factory()
    codes = read_with(reader, _codes(principal, [row]))
    return FactoryRead.model_validate_json(_items([row], codes)[0])


def export_factories_csv(
    engine: Engine, *, principal: Principal, filters: FactoryFilters
) -> Iterator[str]:
    """Every matching factory as CSV, read in keyset batches so memory stays flat."""
    yield _csv_line(CSV_COLUMNS)
    cursor: str | None = None
    with Session(engine) as session:
        while True:
            page = list_factories(
                session, principal=principal, filters=filters, cursor=cursor, limit=CSV_BATCH
            )
            chunk = io.StringIO()
            writer = csv.writer(chunk, lineterminator="\n")
            for factory in page.items:
                writer.writerow(_csv_row(factory))
            yield chunk.getvalue()
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
            session.expunge_all()


def _csv_line(values: Sequence[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def _csv_row(factory: FactoryRead) -> list[Any]:
    data = factory.model_dump(mode="json")
    data["supplier_codes"] = ";".join(code.supplier_code or "" for code in factory.supplier_codes)
    return [data[column] if data[column] is not None else "" for column in CSV_COLUMNS]


def create_factory(session: Session, *, data: FactoryCreate) -> Factory:
    factory = Factory(**data.model_dump())
    session.add(factory)
    _flush_unique(session)
    emit_factory_updated(session, factory, sorted(data.model_fields_set))
    return factory


def update_factory(session: Session, *, factory_id: str, data: FactoryUpdate) -> Factory:
    factory = session.get(Factory, factory_id)
    if factory is None:
        raise not_found_factory()
    changes = {
        name: value
        for name, value in data.model_dump(exclude_unset=True).items()
        if getattr(factory, name) != value
    }
    if not changes:
        return factory
    for name in ("name", "country", "sector", "status"):
        if name in changes and changes[name] is None:
            raise InvalidInput.at(name, f"{name} cannot be null")
    women = changes.get("workers_women", factory.workers_women)
    total = changes.get("workers_total", factory.workers_total)
    if women is not None and total is not None and women > total:
        raise InvalidInput.at("workers_women", "workers_women cannot exceed workers_total")
    apply_changes(session, factory, changes, at=utcnow())
    _flush_unique(session)
    return factory


def apply_changes(
    session: Session, factory: Factory, changes: dict[str, Any], *, at: dt.datetime
) -> None:
    """Sets the changed fields and emits `factory.updated` (and `factory.status_changed`)."""
    previous_status = factory.status
    for name, value in changes.items():
        setattr(factory, name, value)
    factory.updated_at = at
    session.add(factory)
    emit_factory_updated(session, factory, sorted(changes))
    if "status" in changes:
        emit(
            session,
            EventType.factory_status_changed,
            {"factory_id": factory.id, "from": previous_status, "to": factory.status},
            factory_id=factory.id,
        )


def emit_factory_updated(session: Session, factory: Factory, changed: list[str]) -> None:
    emit(
        session,
        EventType.factory_updated,
        {
            "factory_id": factory.id,
            "name": factory.name,
            "country": factory.country,
            "status": factory.status,
            "changed": changed,
        },
        factory_id=factory.id,
    )


def _flush_unique(session: Session) -> None:
    if (refused := flush_refused(session)) is not None:
        field = "os_id" if "os_id" in refused.lower() else "programme_code"
        message = f"Another factory already has this {field}."
        raise Conflict(message, [FieldError(field, message)])
