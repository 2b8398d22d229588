"""Import every built-in registered module (so `versanet list` and YAML short names see them)."""

from versanet import graph  # noqa: F401
from versanet.data import captioned_video, transforms  # noqa: F401
from versanet.encoders import small  # noqa: F401
from versanet.heads import projection  # noqa: F401
from versanet.losses import nce  # noqa: F401
