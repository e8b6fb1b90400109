"""Precomputed products beside imagery: one provider that sends each sensor where it is served.

A precomputed product (TESSERA, Copernicus-Embed, ...) has its own provider, named in
its model's ``describe()["provider"]``. A request names one backend (``"auto"``,
``"local"``, ``"gee"``, a STAC API, ...) for its imagery and may mix products with
on-the-fly models: :func:`route_products` then wraps the imagery provider and the
products' providers in a :class:`ProductRouter`, which hands each sensor to the
provider that serves its collection (``serves``), and everything else to the imagery
provider. ``"auto"`` is resolved for the imagery sensors alone, so a product in the
request never decides which imagery backend is used.

The router keeps the whole provider contract (:class:`~rs_embed.providers.base.Provider`)
by forwarding each part to the provider a sensor is routed to: fetches (one, many,
time series), the pre-flight check, footprints, retries (:meth:`ProductRouter.route`
lets the export engine apply the routed provider's own retry layer and deadlines);
its identity covers the imagery provider and every product provider, so a resume
never keeps files made with other settings of either.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..specs import SensorSpec, SpatialSpec, TemporalSpec
from .base import Patch, Provider


def product_of(embedder) -> Optional[str]:
    """The product provider an embedder reads from (None: the imagery backend serves it)."""
    caps = embedder.capabilities() if hasattr(embedder, "capabilities") else embedder.describe()
    return caps.get("provider") if caps.get("type") == "precomputed" else None


def product_providers(embedders: Sequence) -> List[str]:
    """Names of the product providers the given embedders read from, in first-use order."""
    names: List[str] = []
    for e in embedders:
        name = product_of(e)
        if name and name not in names:
            names.append(name)
    return names


def _serves(provider: Provider, sensor: SensorSpec) -> bool:
    serves = getattr(provider, "serves", None)
    return bool(callable(serves) and serves(sensor))


class ProductRouter(Provider):
    """The imagery provider plus product providers (see the module docstring)."""

    def __init__(self, base: Provider, base_name: str, products: Dict[str, Provider]):
        self.base = base
        self.base_name = base_name
        self.products = dict(products)
        self.name = "+".join([base_name, *self.products])  # type: ignore[misc]

    # -- where a sensor goes ------------------------------------------------------------
    def route(self, sensor: SensorSpec) -> Provider:
        """The product provider that serves ``sensor``'s collection, else the imagery one."""
        for p in self.products.values():
            if _serves(p, sensor):
                return p.route(sensor)
        return self.base.route(sensor)

    provider_for = route

    def backend_name_for(self, sensor: SensorSpec) -> str:
        """The registry name of the provider ``sensor`` is routed to (``"local"``, ``"tessera"``)."""
        for name, p in self.products.items():
            if _serves(p, sensor):
                return name
        return self.base_name

    @property
    def retries_itself(self) -> bool:  # type: ignore[override]
        """True only when every routed provider retries by itself; the engine asks
        :meth:`route` per sensor and applies each provider's own answer."""
        return all(getattr(p, "retries_itself", False) for p in self._all())

    def _all(self) -> List[Provider]:
        return [self.base, *self.products.values()]

    # -- fetching -----------------------------------------------------------------------
    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec], sensor: SensorSpec) -> Patch:
        return self.route(sensor).fetch(spatial, temporal, sensor)

    def fetch_frames(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                     sensor: SensorSpec) -> Patch:
        return self.route(sensor).fetch_frames(spatial, temporal, sensor)

    def fetch_many(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                   sensors: Sequence[SensorSpec], *,
                   return_exceptions: bool = False) -> List[Union[Patch, Exception]]:
        """Each routed provider's ``fetch_many`` for its sensors (so Earth Engine still
        shares requests between its own sensors), answers put back in ``sensors`` order.
        One provider's failure never fails another's sensors with ``return_exceptions``."""
        out: List[Union[Patch, Exception, None]] = [None] * len(sensors)
        for provider, idx in self.partition(sensors):
            part = provider.fetch_many(spatial, temporal, [sensors[i] for i in idx],
                                       return_exceptions=return_exceptions)
            for i, r in zip(idx, part):
                out[i] = r
        return out  # type: ignore[return-value]

    def partition(self, sensors: Sequence[SensorSpec]) -> List[Tuple[Provider, List[int]]]:
        """``sensors`` grouped by the provider each is routed to, in first-use order."""
        groups: List[Tuple[Provider, List[int]]] = []
        for i, s in enumerate(sensors):
            p = self.route(s)
            for q, idx in groups:
                if q is p:
                    idx.append(i)
                    break
            else:
                groups.append((p, [i]))
        return groups

    # -- what can be served, before fetching --------------------------------------------
    def check_sensor(self, sensor: SensorSpec) -> Optional[str]:
        return self.route(sensor).check_sensor(sensor)

    def availability(self) -> Optional[str]:  # type: ignore[override]
        """The first reason one of the routed providers cannot be used here, or None."""
        for p in self._all():
            why = type(p).availability()
            if why:
                return why
        return None

    def coverage_fraction(self, spatials: Sequence[SpatialSpec], temporal: Optional[TemporalSpec] = None,
                          sensor: Optional[SensorSpec] = None) -> List[Optional[float]]:
        provider = self.route(sensor) if sensor is not None else self.base
        return provider.coverage_fraction(spatials, temporal, sensor)

    # -- identity -----------------------------------------------------------------------
    def settings(self) -> dict:
        """The imagery provider's identity and each product provider's, by registry name."""
        return {"imagery": {"backend": self.base_name, **self.base.identity()},
                "products": {name: p.identity() for name, p in self.products.items()}}

    def coverage(self) -> str:
        return "; ".join(p.coverage() for p in self._all())

    def close(self) -> None:
        for p in self._all():
            p.close()

    def __getattr__(self, item):
        # helpers of the imagery provider that are no part of the contract (list_scenes,
        # footprints, ...) stay reachable through the router
        if item in ("base", "products", "base_name") or item.startswith("__"):
            raise AttributeError(item)
        return getattr(self.base, item)


def route_products(resolve_base: Callable[[Optional[List[SensorSpec]]], str], embedders: Sequence,
                   get_provider, sensors: Optional[Sequence[SensorSpec]] = None) -> Tuple[Provider, str]:
    """The provider a request uses: the imagery backend's, one product's, or a router.

    ``resolve_base(imagery_sensors)`` names the imagery backend for the request's
    sensors that no product serves (None when the request's sensors are not known);
    it is not called when every model is read by one product provider (so ``"auto"``
    looks for no Earth Engine credentials and no local catalog).
    """
    names = product_providers(embedders)
    if names and all(product_of(e) is not None for e in embedders):  # products only
        if len(names) == 1:
            return get_provider(names[0]), names[0]
        router = ProductRouter(get_provider(names[0]), names[0], {n: get_provider(n) for n in names[1:]})
        return router, router.name
    products = {n: get_provider(n) for n in names}
    imagery = None
    if sensors is not None:
        imagery = [s for s in sensors if s is not None and not any(_serves(p, s) for p in products.values())]
    base_name = resolve_base(imagery)
    products = {n: p for n, p in products.items() if n != base_name}
    if not products:
        return get_provider(base_name), base_name
    router = ProductRouter(get_provider(base_name), base_name, products)
    return router, router.name


def backend_name_for(provider: Provider, backend_name: str, sensor: Optional[SensorSpec]) -> str:
    """The backend a sensor of a request is read from: the routed one behind a router."""
    if isinstance(provider, ProductRouter) and sensor is not None:
        return provider.backend_name_for(sensor)
    return backend_name


__all__ = ["ProductRouter", "route_products", "product_providers", "product_of", "backend_name_for"]
