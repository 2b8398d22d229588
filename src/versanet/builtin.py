"""Import every built-in registered module (so `versanet list` and YAML short names see them)."""

from versanet import graph  # noqa: F401
from versanet.data import captioned_video, transforms  # noqa: F401
from versanet.encoders import small  # noqa: F401
from versanet.heads import projection  # noqa: F401
from versanet.losses import nce  # noqa: F401
from versanet.data import images  # noqa: F401
from versanet.encoders import word2vec_text  # noqa: F401
from versanet.models import recalibrate  # noqa: F401
from versanet.text import word2vec  # noqa: F401
from versanet.encoders import audio_resnet, r2plus1d, s3dg, tsm_resnet  # noqa: F401
from versanet.data import datasets  # noqa: F401
from versanet import downstream  # noqa: F401
