"""GIFs and short clips: probe, sample frames, detect and draw frame by frame, encode an animation, summarise.

``options`` holds the plain settings (no PyAV); the other modules import PyAV, so only an inference process that
takes a clip imports them: ``probe`` (what a clip is, before decoding), ``frames`` (sampling), ``encode`` (the
animation) and ``pipeline`` (one clip through one detector, and its summary).
"""
