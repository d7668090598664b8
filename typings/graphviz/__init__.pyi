# Stubs for the parts of the graphviz package (https://graphviz.readthedocs.io) that perceptspec uses.
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__version__: str

class ExecutableNotFound(RuntimeError): ...
class CalledProcessError(Exception): ...

class Digraph:
    name: str | None
    body: list[str]
    def __init__(
        self,
        name: str | None = ...,
        comment: str | None = ...,
        filename: str | os.PathLike[str] | None = ...,
        directory: str | os.PathLike[str] | None = ...,
        format: str | None = ...,
        engine: str | None = ...,
        encoding: str | None = ...,
        graph_attr: Mapping[str, str] | None = ...,
        node_attr: Mapping[str, str] | None = ...,
        edge_attr: Mapping[str, str] | None = ...,
        body: list[str] | None = ...,
        strict: bool = ...,
    ) -> None: ...
    @property
    def source(self) -> str: ...
    def copy(self) -> Digraph: ...
    def node(self, name: str, label: str | None = ..., _attributes: Mapping[str, str] | None = ...,
             **attrs: str) -> None: ...
    def edge(self, tail_name: str, head_name: str, label: str | None = ...,
             _attributes: Mapping[str, str] | None = ..., **attrs: str) -> None: ...
    def attr(self, kw: str | None = ..., _attributes: Mapping[str, str] | None = ..., **attrs: str) -> None: ...
    @contextmanager
    def subgraph(self, graph: Digraph | None = ..., name: str | None = ..., comment: str | None = ...,
                 graph_attr: Mapping[str, str] | None = ..., node_attr: Mapping[str, str] | None = ...,
                 edge_attr: Mapping[str, str] | None = ..., body: list[str] | None = ...) -> Iterator[Digraph]: ...
    def render(self, filename: str | os.PathLike[str] | None = ..., directory: str | os.PathLike[str] | None = ...,
               view: bool = ..., cleanup: bool = ..., format: str | None = ..., renderer: str | None = ...,
               formatter: str | None = ..., neato_no_op: bool | int | None = ..., quiet: bool = ...,
               quiet_view: bool = ..., *, outfile: str | os.PathLike[str] | None = ..., engine: str | None = ...,
               raise_if_result_exists: bool = ..., overwrite_source: bool = ...) -> str: ...
    def pipe(self, format: str | None = ..., renderer: str | None = ..., formatter: str | None = ...,
             neato_no_op: bool | int | None = ..., quiet: bool = ..., *, engine: str | None = ...,
             encoding: str | None = ...) -> bytes: ...
