"""Finding the items of a window: pystac-client searches, filtered, ordered and cached.

The API is asked for the collection, the ROI's lon/lat box and the time window; the
cloud filter goes to the server in the dialect it declares (CQL2 ``filter`` or the
``query`` extension) and is applied again here, as are the window and the box, so a
server that ignores part of a search (or drops it from its ``next`` links) never lets
a wrong item through. Items come back in one deterministic order, oldest first (ties
by id), whatever order the server used. Searches are cached per (collection, box,
window, cloud filter): several sensors, models or retries over one ROI cost one search.
Every HTTP request pystac-client sends (the root, each page) goes through the fetch's
:class:`~.faults.FetchBudget`: its timeout is what is left of the fetch, and it is
retried there, not by urllib3.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Dict, List, Optional, Sequence, Tuple

from ...errors import ProviderError
from .faults import FetchBudget, RetryPolicy, search_error

CLOUD_PROPERTY = "eo:cloud_cover"


def _item_datetime(item: dict) -> Optional[datetime]:
    props = item.get("properties") or {}
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Window:
    """A half-open day window ``[start, end)`` (None: no time filter)."""

    start: date
    end: date

    def stac_interval(self) -> str:
        """STAC's closed interval for the half-open window (last instant before ``end``)."""
        last = datetime.combine(self.end, datetime.min.time(), timezone.utc) - timedelta(milliseconds=1)
        return f"{self.start.isoformat()}T00:00:00Z/{last.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"

    def contains(self, dt: datetime) -> bool:
        return self.start <= dt.astimezone(timezone.utc).date() < self.end

    def text(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def split_antimeridian(bbox: Tuple[float, float, float, float]) -> List[Tuple[float, float, float, float]]:
    """One box, or two when it crosses 180 degrees (west > east)."""
    west, south, east, north = bbox
    if west <= east:
        return [bbox]
    return [(west, south, 180.0, north), (-180.0, south, east, north)]


def item_summary(item: dict) -> dict:
    """What a manifest records to reproduce a result: id, datetime, cloud cover."""
    props = item.get("properties") or {}
    return {"id": item.get("id"), "collection": item.get("collection"),
            "datetime": props.get("datetime") or props.get("start_datetime"),
            CLOUD_PROPERTY: props.get(CLOUD_PROPERTY)}


class ItemSearch:
    """STAC API searches of one API root; thread-safe (one HTTP session per thread)."""

    def __init__(self, url: str, policy: RetryPolicy, *, headers: Optional[Dict[str, str]] = None,
                 page_size: int = 100, max_items: int = 2000, cache_size: int = 1024,
                 cache_ttl_s: float = 3600.0):
        self.url = url.rstrip("/")
        self.policy = policy
        self.headers = dict(headers or {})
        self.page_size = int(page_size)
        self.max_items = int(max_items)
        self.cache_size = int(cache_size)
        self.cache_ttl_s = float(cache_ttl_s)
        self._local = threading.local()
        self._cache: "OrderedDict[tuple, Tuple[float, List[dict]]]" = OrderedDict()
        self._key_locks: Dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()
        self.requests = 0  # searches sent (cache misses)

    # -- the client ----------------------------------------------------------------
    def client(self, budget: Optional[FetchBudget] = None):
        """This thread's ``pystac_client.Client`` (opened on first use: one GET of the
        root), its transport bound to ``budget`` (default: one for the calling thread's
        fetch) until the next call."""
        budget = budget if budget is not None else FetchBudget(self.policy)
        c = getattr(self._local, "client", None)
        if c is not None:
            c._stac_io.budget = budget
            return c
        try:
            from pystac_client import Client
        except ImportError:  # pragma: no cover - the extra is missing
            raise ProviderError("the STAC backends need pystac-client: pip install 'rs_embed[stac]'",
                                transient=False) from None
        io = _budgeted_io()(headers=self.headers, max_retries=0)
        io.budget, io.api_url, io.what = budget, self.url, "opening the STAC API"
        try:
            c = Client.open(self.url, stac_io=io)
        except ProviderError:
            raise
        except Exception as exc:
            raise budget.mark(search_error(exc, "opening the STAC API", self.url)) from exc
        self._local.client = c
        return c

    def conforms(self, which: str, budget: Optional[FetchBudget] = None) -> bool:
        from pystac_client.conformance import ConformanceClasses

        try:
            return bool(self.client(budget).conforms_to(getattr(ConformanceClasses, which)))
        except ProviderError:
            raise
        except Exception:
            return False

    def collection_ids(self, budget: Optional[FetchBudget] = None) -> List[str]:
        client = self.client(budget)
        client._stac_io.what = "listing collections"
        try:
            return sorted(c.id for c in client.get_collections())
        except ProviderError:
            raise
        except Exception as exc:
            raise search_error(exc, "listing collections", self.url) from exc

    def collection(self, collection_id: str, budget: Optional[FetchBudget] = None) -> Optional[dict]:
        """The collection document ``GET /collections/{id}``, or None when the API has none."""
        client = self.client(budget)
        io = client._stac_io
        io.what = f"looking up collection {collection_id!r}"
        url = f"{self.url}/collections/{collection_id}"
        try:
            import json

            return json.loads(io.request(url))
        except ProviderError as exc:
            if getattr(exc, "status", None) == 404 or "HTTP 404" in str(exc):
                return None
            raise

    # -- searching -------------------------------------------------------------------
    def search(self, collection: str, bbox: Tuple[float, float, float, float],
               window: Optional[Window], cloudy_pct: Optional[float],
               budget: Optional[FetchBudget] = None) -> List[dict]:
        """Items of ``collection`` over ``bbox`` in ``window`` with cloud cover <= ``cloudy_pct``
        (its requests spend ``budget``: default, one for the calling thread's fetch)."""
        key = (collection, tuple(round(v, 6) for v in bbox),
               (window.start, window.end) if window else None,
               None if cloudy_pct is None else float(cloudy_pct))
        hit = self._cached(key)
        if hit is not None:
            return hit
        budget = budget if budget is not None else FetchBudget(self.policy)
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        budget.wait_lock(lock)  # concurrent callers of one key wait for the first search
        try:
            hit = self._cached(key)
            if hit is not None:
                return hit
            items = self._search(collection, bbox, window, cloudy_pct, budget)
            with self._lock:
                self._cache[key] = (time.monotonic(), items)
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    old, _ = self._cache.popitem(last=False)
                    self._key_locks.pop(old, None)
            return list(items)
        finally:
            lock.release()

    def _cached(self, key) -> Optional[List[dict]]:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            if time.monotonic() - hit[0] > self.cache_ttl_s:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return list(hit[1])

    def _search(self, collection, bbox, window, cloudy_pct, budget: FetchBudget) -> List[dict]:
        client = self.client(budget)
        extra = {}
        if cloudy_pct is not None and cloudy_pct < 100:
            if self.conforms("FILTER", budget):
                extra = {"filter": {"op": "<=", "args": [{"property": CLOUD_PROPERTY}, cloudy_pct]},
                         "filter_lang": "cql2-json"}
            elif self.conforms("QUERY", budget):
                extra = {"query": {CLOUD_PROPERTY: {"lte": cloudy_pct}}}
        found: Dict[str, dict] = {}
        for box in split_antimeridian(bbox):
            with self._lock:
                self.requests += 1
            client._stac_io.what = f"searching {collection!r}"
            try:
                search = client.search(collections=[collection], bbox=list(box),
                                       datetime=window.stac_interval() if window else None,
                                       limit=self.page_size, max_items=self.max_items, **extra)
                for item in search.items_as_dicts():
                    found.setdefault(str(item.get("id")), item)
            except ProviderError:
                raise
            except Exception as exc:
                raise budget.mark(search_error(exc, f"searching {collection!r}", self.url)) from exc
        keep = []
        for item in found.values():
            if item.get("collection") not in (None, collection):
                continue
            dt = _item_datetime(item)
            if window is not None and (dt is None or not window.contains(dt)):
                continue
            if not _overlaps(item.get("bbox"), bbox):
                continue
            cc = (item.get("properties") or {}).get(CLOUD_PROPERTY)
            if cloudy_pct is not None and cloudy_pct < 100 and cc is not None and float(cc) > cloudy_pct:
                continue
            keep.append(item)
        keep.sort(key=lambda it: (_item_datetime(it) or datetime.min.replace(tzinfo=timezone.utc),
                                  str(it.get("id"))))
        return keep

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self._key_locks.clear()


_IO_CLASS = None


def _budgeted_io():
    """pystac-client's ``StacApiIO`` whose every request spends the bound ``budget``
    (made on first use: pystac-client is an optional dependency)."""
    global _IO_CLASS
    if _IO_CLASS is None:
        from pystac_client.stac_api_io import StacApiIO

        class BudgetedStacApiIO(StacApiIO):
            budget: Optional[FetchBudget] = None
            api_url: str = ""
            what: str = "calling the STAC API"

            def request(self, href, method=None, headers=None, parameters=None):
                budget, what = self.budget, self.what

                def send():
                    self.timeout = RetryPolicy.requests_timeout(budget.request_timeout())
                    return StacApiIO.request(self, href, method=method, headers=headers,
                                             parameters=parameters)

                return budget.call(send, lambda exc: search_error(exc, what, self.api_url), what)

        _IO_CLASS = BudgetedStacApiIO
    return _IO_CLASS


def _overlaps(item_bbox: Optional[Sequence[float]], bbox: Tuple[float, float, float, float]) -> bool:
    if not item_bbox or len(item_bbox) < 4:
        return True
    if len(item_bbox) == 6:
        item_bbox = (item_bbox[0], item_bbox[1], item_bbox[3], item_bbox[4])
    w, s, e, n = (float(v) for v in item_bbox[:4])
    return any(bw < te and tw < be and bs < tn and ts < bn
               for bw, bs, be, bn in split_antimeridian((w, s, e, n))
               for tw, ts, te, tn in split_antimeridian(bbox))


__all__ = ["ItemSearch", "Window", "item_summary", "split_antimeridian", "CLOUD_PROPERTY"]
