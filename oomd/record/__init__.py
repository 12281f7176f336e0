"""Recordings: what the daemon saw, tick by tick, for replay, export and explanation
(docs/replay.md; the format in docs/design.md, "Recordings").

The API other parts build on (kept stable; extended, never renamed):

* ``oomd.record.format``: the container. ``encode_frame(kind, payload)``,
  ``encode_frame_parts(kind, parts)``, ``scan_segment``, ``iter_frames``, frame kinds
  ``META``, ``TICK``, ``DECISION``, ``CONFIG``, ``NOTE``, ``RecordingError``.
* ``oomd.record.ticks``: ``Capturer().capture(ctx, fired, copy=True) -> TickSnapshot`` (on
  the tick's thread, after the engine's tick; ``copy=False``: views of the live columns, to be
  encoded before the next tick), ``TickEncoder`` (``encode``/``encode_parts``, ``reset``,
  ``next_is_key``), ``TickDecoder``, ``TickFrame``.
* ``oomd.record.writer``: ``Recorder`` (``--record DIR``: ``tick(snapshot)``,
  ``decision(dict)``, ``config_event(dict)``, ``close()``), ``TickRing(ticks)`` (the last N
  ticks in memory: ``add(snapshot)``, ``write(path, meta, extra)`` -> a self-contained
  recording file), ``write_recording_file``, ``base_meta``.
* ``oomd.record.reader``: ``Recording.open(path)`` (a directory of segments or one file),
  ``.events()`` (``Event(kind, data, segment)``), ``.ticks()``, ``.problems``.
* ``oomd.record.session``: ``RecordSession(recorder, ring)``, what the daemon holds: a
  capturer, the detector groups that fired this tick (``observer(inner)`` wraps the engine's
  observer), the decisions (``EngineObserver.decision``), ``after_tick(ctx)``;
  ``decision_metrics`` (``Engine.extra_monitored`` while recording).
* ``oomd.record.replay``: ``replay(path, config)`` -> ``ReplayResult``;
  ``oomd.record.replay_ctx.ReplayContext`` (``OomdContext``'s interface over a recorded tick).
"""
