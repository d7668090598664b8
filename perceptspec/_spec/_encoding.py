"""Blocks that turn raw observations into float features: OneHot and Embedding (integer indices), ToFloat (any
numbers, e.g. uint8 pixels).

Their inputs are not the float features every other block reads, and the run-time check knows it (`input_roles`):
OneHot and Embedding read 'index' inputs (an integer dtype, each index in [0, its number of classes)), ToFloat reads
'number' inputs (any real dtype: bool, integers or floats). Their outputs are floats of the module's dtype (float32
unless the module was converted, e.g. with `.double()`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor

__all__ = ["Embedding", "OneHot", "ToFloat"]

#: what each index input of OneHot and Embedding is, for the run-time check
INDEX, NUMBER = "index", "number"


class IndexBlock(Block):
    """A block reading integer indices: one count for every entry, or one count per entry of the last dim."""

    _abstract: ClassVar[bool] = True
    #: the field holding the number of classes (one int, or one per entry of the last dim)
    _count_field: ClassVar[str]

    def input_roles(self) -> tuple[str, ...]:
        return (INDEX,)

    def index_limits(self) -> int | tuple[int, ...]:
        """The exclusive upper bound of the indices: one for all, or one per entry of the input's last dim."""
        counts: int | Sequence[int] = getattr(self, self._count_field)
        return counts if isinstance(counts, int) else tuple(counts)

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        counts = self.index_limits()
        if not (counts > 0 if isinstance(counts, int) else counts and all(n > 0 for n in counts)):
            yield f"field '{self._count_field}': expected a positive int or one or more positive ints, got " \
                  f"{counts if isinstance(counts, int) else list(counts)}"


@descriptor
class OneHot(IndexBlock):
    """One-hot encodes integer indices, as SB3 and gymnasium do with Discrete and MultiDiscrete observations.

    num_classes n (an int): every index becomes a one-hot vector of n floats, (...) -> (..., n); a Discrete(n)
    observation of shape () becomes (n,).
    num_classes [n1, ..., nk] (a list): the last dim holds k indices, entry i among n_i classes, and their one-hot
    vectors are concatenated, (..., k) -> (..., n1 + ... + nk); a MultiDiscrete([n1, ..., nk]) observation.
    """

    _count_field: ClassVar[str] = "num_classes"

    num_classes: int | Sequence[int]


@descriptor
class Embedding(IndexBlock):
    """A learned vector of `embedding_dim` floats per index, as `torch.nn.Embedding`.

    num_embeddings n (an int): (...) -> (..., embedding_dim), indices in [0, n).
    num_embeddings [n1, ..., nk] (a list): the last dim holds k indices, entry i among n_i values, each entry with
    its own rows of one table of n1 + ... + nk rows, (..., k) -> (..., k, embedding_dim).
    Weights: `TorchDefault` draws them from N(0, 1) as `torch.nn.Embedding` does; any other initialiser fills the
    table as it would the weight of a Linear layer from the one-hot vectors (fan-in: the number of rows).
    """

    _count_field: ClassVar[str] = "num_embeddings"

    num_embeddings: int | Sequence[int]
    embedding_dim: int

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if self.embedding_dim <= 0:
            yield f"field 'embedding_dim': expected a positive int, got {self.embedding_dim}"


@descriptor
class ToFloat(Block):
    """Numbers of any real dtype (uint8 pixels, integers, bools, floats) as floats of the module's dtype, times
    `scale`: an image's [0, 255] becomes [0, 1] with scale=1/255. The shape is unchanged."""

    scale: float = 1.0

    def input_roles(self) -> tuple[str, ...]:
        return (NUMBER,)

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if not (self.scale == self.scale and abs(self.scale) != float("inf")) or self.scale == 0:
            yield f"field 'scale': expected a finite, non-zero float, got {self.scale}"
