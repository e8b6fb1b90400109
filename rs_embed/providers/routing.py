"""Precomputed products beside imagery: one provider that sends each sensor where it is served.

A precomputed product (TESSERA, Copernicus-Embed, ...) has its own provider, named in
its model's ``describe()["provider"]``. A request names one backend (``"auto"``,
``"local"``, ``"gee"``, ...) for its imagery and may mix products with on-the-fly models:
:func:`route_products` then wraps the imagery provider
and the products' providers in a :class:`ProductRouter`, which hands each sensor to the
provider that serves its collection (``Provider.serves``), and everything else to the
imagery provider. Each distinct patch is still fetched once, and one sensor's failure
never fails another's patch (the router fetches sensor by sensor).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from ..specs import SensorSpec, SpatialSpec, TemporalSpec
from .base import Patch, Provider


def _product_of(embedder) -> Optional[str]:
    caps = embedder.capabilities() if hasattr(embedder, "capabilities") else embedder.describe()
    return caps.get("provider") if caps.get("type") == "precomputed" else None


def product_providers(embedders: Sequence) -> List[str]:
    """Names of the product providers the given embedders read from, in first-use order."""
    names: List[str] = []
    for e in embedders:
        name = _product_of(e)
        if name and name not in names:
            names.append(name)
    return names


class ProductRouter(Provider):
    """The imagery provider plus product providers (see the module docstring)."""

    def __init__(self, base: Provider, base_name: str, products: Dict[str, Provider]):
        self.base = base
        self.base_name = base_name
        self.products = dict(products)
        self.name = "+".join([base_name, *self.products])  # type: ignore[misc]

    def provider_for(self, sensor: SensorSpec) -> Provider:
        for p in self.products.values():
            serves = getattr(p, "serves", None)
            if callable(serves) and serves(sensor):
                return p
        return self.base

    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec], sensor: SensorSpec) -> Patch:
        return self.provider_for(sensor).fetch(spatial, temporal, sensor)

    def coverage(self) -> str:
        return "; ".join([self.base.coverage(), *(p.coverage() for p in self.products.values())])

    def close(self) -> None:
        for p in (self.base, *self.products.values()):
            p.close()

    def __getattr__(self, item):
        # settings and helpers of the imagery provider stay reachable through the router
        if item in ("base", "products", "base_name"):
            raise AttributeError(item)
        return getattr(self.base, item)


def route_products(resolve_base, embedders: Sequence, get_provider) -> Tuple[Provider, str]:
    """The provider a request uses: the imagery backend's, one product's, or a router.

    ``resolve_base()`` names the imagery backend; it is not called when every model is
    read by one product provider (so ``"auto"`` looks for no Earth Engine credentials).
    """
    names = product_providers(embedders)
    if len(names) == 1 and all(_product_of(e) == names[0] for e in embedders):
        return get_provider(names[0]), names[0]
    base_name = resolve_base()
    names = [n for n in names if n != base_name]
    if not names:
        return get_provider(base_name), base_name
    products = {n: get_provider(n) for n in names}
    router = ProductRouter(get_provider(base_name), base_name, products)
    return router, router.name


__all__ = ["ProductRouter", "route_products", "product_providers"]
