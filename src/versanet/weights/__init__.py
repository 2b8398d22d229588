"""Published checkpoints -> versanet checkpoints: the registry, the conversion driver, shared helpers.

- :mod:`~versanet.weights.registry`: the known published checkpoints (``versanet weights list``);
- :mod:`~versanet.weights.convert`: ``versanet weights convert --from FORMAT SRC OUT`` and ``@converter``;
- :mod:`~versanet.weights.layout`: named source parameters, kernel layouts, the TSM channel swap, exact loading;
- :mod:`~versanet.weights.tf_bundle`: TF checkpoints and SavedModel variables, read without TensorFlow;
- one module per released family (``milnce``, ``mmv``): the converter that assembles a whole model
  from the key-mapping functions at the end of each encoder's file.

May import: everything below it (encoders, heads, data transforms, checkpoint); nothing imports it
except the CLI, and encoder files only ``layout`` (which imports nothing of versanet).
"""
