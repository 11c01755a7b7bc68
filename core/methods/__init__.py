"""Every registered method; importing this package fills the registry."""
from core.methods import dccf, dcn, dec, dscnss, iciclegcn, kmeans, n2d, rdc  # noqa: F401
