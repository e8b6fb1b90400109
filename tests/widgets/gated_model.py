"""A real embedder (rcf) that waits at a gate before each batch.

It makes "while an export is running" a state a test can hold on purpose instead of
a race: the export thread parks inside the model until the test opens the gate.
"""

import threading

from rs_embed.models import register_model
from rs_embed.models.rcf import RCFEmbedder


class GatedRCF(RCFEmbedder):
    name = "gated_rcf"
    entered = threading.Event()  # set when the export reaches the model
    gate = threading.Event()  # the model waits until this is set
    embedded = []  # one entry per embedded patch (shape), in order

    @classmethod
    def reset(cls, open_gate: bool = False) -> None:
        cls.entered.clear()
        cls.embedded.clear()
        if open_gate:
            cls.gate.set()
        else:
            cls.gate.clear()

    def _wait(self) -> None:
        type(self).entered.set()
        if not type(self).gate.wait(timeout=60):
            raise TimeoutError("the test never opened the gate")

    def embed(self, input_chw, *, sensor, output):
        self._wait()
        type(self).embedded.append(tuple(input_chw.shape))
        return super().embed(input_chw, sensor=sensor, output=output)

    def embed_batch(self, inputs, *, sensor, output):
        self._wait()
        type(self).embedded.extend(tuple(x.shape) for x in inputs)
        return super().embed_batch(inputs, sensor=sensor, output=output)


def register() -> type:
    register_model("gated_rcf", GatedRCF)
    return GatedRCF
