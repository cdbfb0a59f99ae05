"""Production restoration over many images (issue 21): the pieces the ``pnpfast restore`` runner
is built from, each usable alone.

* ``worklist``: the inputs (files, folders, globs, list files, a CSV/JSONL manifest of
  per-image settings) as a sorted list of work items, their output paths mirroring the input
  tree, and the deterministic split of that list across ranks.
* ``ledger``: the append-only, fsync'd JSONL record of finished images that makes a rerun
  resume, and the settings fingerprint that refuses a rerun with other settings.
* ``tiles``: batches grouped by size, an out-of-memory error answered by halving the batch,
  and a denoiser run on overlapping tiles for an image too large for memory.

Nothing here imports the CLI; the CLI only parses flags into it.
"""
