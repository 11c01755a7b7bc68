"""deepclust core: the deep clustering library.

Pure PyTorch / NumPy / scikit-learn. Nothing here imports the API, the worker or the
database layer, so the same code runs in a Celery worker, from the shell
(`deepclust run`) and from Python:

    from core import get_method, Context
    method = get_method("idec")
    result = method.fit(X, n_clusters=10, params=method.Params(), ctx=Context(seed=0))
"""
from core.interface import (
    ClusteringResult,
    Context,
    InputSpec,
    JobCancelled,
    Method,
    MethodParams,
)
from core.registry import get_method, list_methods, method_names, register

__all__ = [
    "ClusteringResult", "Context", "InputSpec", "JobCancelled", "Method", "MethodParams",
    "get_method", "list_methods", "method_names", "register",
]
