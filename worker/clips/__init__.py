"""GIFs and short clips: sample frames, detect and draw frame by frame, encode an animation, summarise.

What a clip may be and how it is sampled (``queue_gateway.public.clips``) and the probe that refuses one before
anything is decoded (``queue_gateway.public.clipprobe``) are shared with the gateway, which refuses a clip at
intake. The modules here import PyAV, so only an inference process that takes a clip imports them: ``frames``
(sampling), ``encode`` (the animation) and ``pipeline`` (one clip through one detector, and its summary).
"""
