"""The feeding schedule of ``benchmarks/streaming.py``, shared by both sides.

Standard library only: ``benchmarks/peer/streaming_peer.py`` imports it in the peer venv.

``streams`` slots are served in ticks, as a server loop would serve live microphones.
Each slot holds one utterance at a time; the utterances are taken in order from a queue.
In every tick, each occupied slot receives its utterance's next ``step`` samples (one
*chunk call* for all of them: our ``feed`` gets the streams as one batch, ESPnet2's
``Speech2TextStreaming`` objects are called one after another). The slots whose
utterance has now been fed to its end get their *final call* right after (an empty
chunk with ``final=True``: the end of speech was already fed, so the time of that call
is the delay from the end of speech to the final hypothesis). A slot freed by a final
call takes the next utterance from the queue in the next tick. So with 8 slots, 8
streams are live at once until the queue runs dry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Tick:
    """One round of the loop.

    Attributes:
        feeds: ``(utterance, start, stop)`` sample ranges, one per occupied slot, in
            slot order: the chunk call.
        finals: utterances fed to their end in this tick, in slot order: the final call.
        starts: utterances that begin in this tick (a new stream each).
    """

    feeds: tuple[tuple[int, int, int], ...]
    finals: tuple[int, ...]
    starts: tuple[int, ...]


def ticks(lengths: list[int], step: int, streams: int) -> Iterator[Tick]:
    """The ticks that feed utterances of ``lengths`` samples ``step`` samples at a time
    through ``streams`` slots (see the module docstring)."""
    if step < 1 or streams < 1:
        raise ValueError(f"step={step} and streams={streams} must both be >= 1")
    if any(n < 1 for n in lengths):
        raise ValueError(f"every utterance needs at least one sample, got lengths {lengths}")
    queue = list(range(len(lengths)))[::-1]
    slots: list[int | None] = [None] * streams
    position = [0] * len(lengths)
    while queue or any(s is not None for s in slots):
        starts = []
        for i, held in enumerate(slots):
            if held is None and queue:
                slots[i] = queue.pop()
                starts.append(slots[i])
        feeds, finals = [], []
        for i, utt in enumerate(slots):
            if utt is None:
                continue
            start = position[utt]
            stop = min(start + step, lengths[utt])
            feeds.append((utt, start, stop))
            position[utt] = stop
            if stop == lengths[utt]:
                finals.append(utt)
                slots[i] = None
        yield Tick(tuple(feeds), tuple(finals), tuple(int(u) for u in starts if u is not None))
