"""Scale-out: the same per-batch functions as the local commands, run on Ray (``latentguard[scale]``).

* :mod:`latentguard.scale.ad`: Alignment Difficulty over embeddings in Parquet shards; the exact structure
  term as one task per tile of the upper triangle, the stratified sampler as one task per chunk of rows.
* :mod:`latentguard.scale.protect`: ``latentguard protect ... --engine ray``: Ray Data actors that load the
  protection once and run :func:`latentguard.protect.batch.protect_batch` on batches of inputs.
* :mod:`latentguard.scale.cli`: the ``--engine`` options, added to ``protect`` and ``audit alignment`` by the
  ``latentguard`` entry point (those commands' own modules sit below this layer).

Nothing here imports Ray at module top: the local engine (the default) needs neither Ray nor this package's
extra. See docs/scale.md.
"""
