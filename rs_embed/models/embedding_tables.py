"""What the GeoParquet embedding lookups share (``majortom``, ``earthindex``).

The provider (:mod:`rs_embed.providers.embedding_tables`) returns the rows under an
ROI as a one-band ``(1, N, D)`` patch (N rows of D values); pooled output is their mean (or element-wise max), the
rows' ids, centres and dates staying in the patch meta. A row is one published
fragment, so there is no pixel grid to return: these products give pooled output only.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import ModelError
from ..providers import embedding_tables as _et
from ..specs import SensorSpec
from .precomputed import PrecomputedEmbedder


class TableEmbedder(PrecomputedEmbedder):
    """Pools the rows of a GeoParquet embedding table that fall under the ROI."""

    requires = ("pyarrow", "fsspec", "shapely")
    extra = "models-tables"
    bands = (_et.EMBEDDING_BAND,)
    output_modes = ("pooled",)
    product: ClassVar[_et.TableProduct]

    def check_input(self, input_chw: np.ndarray, sensor: SensorSpec) -> np.ndarray:
        arr = np.asarray(input_chw)
        if arr.ndim != 3 or arr.shape[0] != 1 or arr.shape[1] < 1 or arr.shape[2] < 1:
            raise ModelError(f"model {self.name!r} expects table rows shaped (1, N, D), got {arr.shape}")
        return arr.astype(np.float32, copy=False)

    def embed_batch(self, inputs, *, sensor, output):
        if tuple(sensor.bands) != self.bands:
            raise ModelError(f"model {self.name!r} reads the table's whole vector: sensor bands must "
                             f"be ('embedding',), got {list(sensor.bands)[:4]}")
        return self._pool(inputs, output)

    def _pool(self, inputs, output):
        from .base import EmbedResult
        from .precomputed import pool_valid

        if output.mode != "pooled":
            raise ModelError(f"model {self.name!r} gives pooled output only (a table row is one "
                             f"fragment, not a pixel grid)")
        out = []
        for x in inputs:
            x = self.check_input(x, SensorSpec("x", ("embedding",)))
            vec, n = pool_valid(x[0].T[:, None, :], output.pooling)  # rows as pixels of a (D, 1, N) grid
            if n == 0:
                raise ModelError(f"model {self.name!r}: every row under the ROI is nodata")
            out.append(EmbedResult(vec, {"pooling": output.pooling, "rows_pooled": n, "cls_removed": False,
                                         "image_size": None, "embedding_dim": int(x.shape[0])}))
        return out


__all__ = ["TableEmbedder"]
