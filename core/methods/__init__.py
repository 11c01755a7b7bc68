"""Every registered method; importing this package fills the registry."""
from core.methods import dccf, dec, dscnss, iciclegcn, kmeans, rdc  # noqa: F401
