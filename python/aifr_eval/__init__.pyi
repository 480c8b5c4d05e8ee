"""Type stubs of aifr_eval (see docs/python.md)."""

import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import metrics as metrics

__version__: str
PathLike = Union[str, os.PathLike[str]]
Keys = Union[Sequence[str], PathLike, None]

class Results:
    table: str
    path: Optional[str]
    def to_json(self) -> str: ...
    def to_dict(self) -> Dict[str, Any]: ...
    @property
    def kind(self) -> str: ...
    @property
    def benchmark(self) -> str: ...
    @property
    def accuracy(self) -> Optional[float]: ...
    @property
    def accuracy_spread(self) -> Optional[float]: ...
    @property
    def auc(self) -> Optional[float]: ...
    @property
    def eer(self) -> Optional[float]: ...
    def tar_at_far(self, far: float, rule: str = "strict", size: Optional[int] = None) -> Optional[float]: ...
    @property
    def rank1(self) -> Optional[float]: ...
    def rank1_at(self, size: int) -> Optional[float]: ...
    def headline(self) -> Dict[str, float]: ...

def evaluate(
    benchmark: str,
    embeddings: Any,
    keys: Keys = None,
    flip_embeddings: Any = None,
    data_dir: Optional[PathLike] = None,
    mode: Optional[str] = None,
    flip: Optional[str] = None,
    out: Optional[PathLike] = None,
    **options: Any,
) -> Results: ...

class Batch:
    start: int
    keys: List[str]
    images: npt.NDArray[np.uint8]
    mirrored: Optional[npt.NDArray[np.uint8]]
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Optional[npt.NDArray[np.uint8]]]: ...

class Benchmark:
    name: str
    keys: List[str]
    def __len__(self) -> int: ...
    def images(
        self,
        batch_size: int = 256,
        size: Tuple[int, int] = (112, 112),
        channels: str = "rgb",
        flip: bool = True,
        prefetch: int = 2,
    ) -> Iterator[Batch]: ...
    def evaluate(self, embeddings: Any, flip_embeddings: Any = None, **kwargs: Any) -> Results: ...
    def embed(
        self, embed: Callable[[npt.NDArray[np.uint8]], Any], batch_size: int = 256, flip: bool = True, **image_options: Any
    ) -> Tuple[npt.NDArray[np.float32], Optional[npt.NDArray[np.float32]]]: ...

def open(benchmark: str, data_dir: Optional[PathLike] = None, datasets: Optional[PathLike] = None) -> Benchmark: ...
def evaluate_callback(
    benchmarks: Sequence[Union[str, Benchmark]],
    embed: Callable[[npt.NDArray[np.uint8]], Any],
    data_dir: Optional[PathLike] = None,
    batch_size: int = 256,
    flip: bool = True,
    **evaluate_options: Any,
) -> Dict[str, float]: ...
