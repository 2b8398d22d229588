"""Search your own videos by text: embed a folder, index it, search it, browse it (``pip install versanet[app]``).

    versanet embed VIDEO_DIR --ckpt CKPT --index INDEX_DIR   # clips -> joint-space vectors (incremental)
    versanet search INDEX_DIR "a red circle moving left"      # the best moments as a table
    versanet serve INDEX_DIR                                   # a local web page: query box, thumbnails, player
    versanet plot INDEX_DIR --labels labels.csv --column colour  # the joint space in 2-D

The pieces, lowest first:

- :mod:`~versanet.app.clips`: which files of a folder are videos, and how a video is cut into moments;
- :mod:`~versanet.app.embedder`: a checkpoint as a clip and query encoder (video/audio clips and text
  queries -> L2-normalised vectors in the checkpoint's text-video space), and the decoding stream;
- :mod:`~versanet.app.store`: the index folder's SQLite database (files, moments, vectors: the source of truth);
- :mod:`~versanet.app.vectors`: the FAISS index kept in step with the database (exact, or IVF above a size);
- :mod:`~versanet.app.indexer`: ``embed`` (incremental, resumable, skips unreadable files);
- :mod:`~versanet.app.search`: a query -> ranked moments; :mod:`~versanet.app.plot`: the 2-D map;
  :mod:`~versanet.app.serve`: the web page (FastAPI); :mod:`~versanet.app.commands`: the CLI verbs;
- :mod:`~versanet.app.evaluate`: precision@k of text search on the toy world;
  :mod:`~versanet.app.threads`: one thread for latency-bound work.

This package sits on top of the library (it imports :mod:`versanet.checkpoint`, :mod:`versanet.data`,
:mod:`versanet.downstream.common`); nothing in the library imports it. Its third-party needs (FAISS,
FastAPI, uvicorn) are the ``app`` extra, imported only by the modules that use them.
"""
