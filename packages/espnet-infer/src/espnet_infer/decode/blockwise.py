"""Blockwise synchronous joint CTC/attention beam search (ESPnet2's ``BatchBeamSearchOnline``).

Tsunoo et al., "Streaming Transformer ASR with Blockwise Synchronous Beam Search"
(2020). The encoder emits its output block by block; after each block the label-
synchronous joint search runs over all encoder frames so far, one token per step, until
a step would make a hypothesis end (``eos``) or repeat a token it already holds: such a
decision is premature without the future frames, so the step is dropped, and the last
accepted step too (its token was chosen with the least look-ahead), and the search waits
for the next block. With the last block (``final``) it runs to the end like the offline
search (ESPnet's end detection when ``maxlenratio == 0``).

Blocks are defined on the encoder output as in ESPnet2: block ``b`` covers the first
``block_size - look_ahead + b * hop_size`` frames and is searched once more frames than
that exist, so the hypotheses depend on the encoder output only, not on how the audio
was chunked.

Many streams are searched together (:meth:`BlockwiseBeamSearch.extend_streams`): the
blocks the streams of one call complete are searched side by side, each stream with
``beam_size`` slots of running hypotheses, and every search step runs one decoder step
and one CTC prefix scoring for the hypotheses of all of them; a stream whose block stops
leaves the batch, the others go on. Streams at different points of their utterances
step together (hypotheses of different lengths, memories of different lengths), so a
stream's hypotheses do not depend on the streams it was searched with.

Scores are those of :class:`~espnet_infer.decode.BeamSearch`: ``(1 - ctc_weight) * att +
ctc_weight * ctc + lm_weight * lm + penalty * tokens`` with ESPnet2's pre-beam (on
``(1 - ctc_weight) * att + lm_weight * lm``). A language model (shallow fusion, as
ESPnet2's ``Speech2TextStreaming`` with ``lm_weight``) scores each stream's rows in one
call per step and stream (its rows share one length), its state carried with the
hypotheses like the decoder's cache. The decoder's cache of
earlier positions is kept when the memory grows (as ESPnet2 does). The CTC prefix
scores are exact over the frames so far: each hypothesis carries the forward variables
of all its prefixes at the last frame, so new frames extend them (and its prefix score)
without re-scoring the history, and a hypothesis's score is always that of the offline
search for it over the frames so far. ESPnet2 instead extends only the blank paths of a
hypothesis and keeps the prefix score of the block where the token was chosen. Another
difference: ESPnet2 can step back to hypotheses saved in an earlier block; here the
step-back stays within the block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from espnet_infer.decode.beam_search import Hypothesis
from espnet_infer.decode.blockwise_ctc import StreamsCTC, extend_frontiers
from espnet_infer.decode.ctc_prefix_score import LOGZERO
from espnet_infer.decode.protocol import ASRModelLike, LMLike, fused_lm

__all__ = ["BlockwiseBeamSearch", "BlockwiseState"]

_NEG_INF = float("-inf")


@dataclass
class _Running:
    """The running hypotheses of one stream between blocks (rows), at ``frames`` frames."""

    ys: torch.Tensor  # (n, L + 1) with sos first
    score: torch.Tensor  # (n,)
    att: torch.Tensor  # (n,) summed decoder log-probabilities
    cache: Any  # the decoder's StepCache of the rows (None before the first step)
    r: torch.Tensor | None  # (T, 2, n) CTC forward variables of each hypothesis
    frontier: torch.Tensor | None  # (n, L + 1, 2) of every prefix at the last frame
    log_psi: torch.Tensor  # (n,)
    lm: Any = None  # the LM's state of the rows' ys[:, :-1] (None before its first call)
    lm_sum: torch.Tensor | None = None  # (n,) summed LM log-probabilities (with an LM)


@dataclass
class BlockwiseState:
    """One stream's search state: encoder frames and CTC log-probabilities so far,
    running and ended hypotheses, blocks searched."""

    enc: torch.Tensor | None = None
    logp: torch.Tensor | None = None
    running: _Running | None = None
    ended: list[Hypothesis] | None = None
    blocks: int = 0
    step: int = 0
    done: bool = False


@dataclass
class _Block:
    """A block one stream searches in a round: its frames, whether it is the last one,
    the token limit, and the steps accepted so far."""

    state: BlockwiseState
    frames: int
    final: bool
    maxlen: int
    accepted: int = 0


@dataclass
class _Batch:
    """The running hypotheses of the streams stepping together.

    Stream ``i`` (``members[i]``, its index in the round) holds rows ``i * beam .. (i + 1)
    * beam - 1``; an empty slot scores -inf. A stream's ``lengths[i]`` tokens are
    right-aligned: ``ys`` ``(N, W)`` has its ``sos`` at column ``W - 1 - lengths[i]``
    (-1 before), ``frontier`` ``(N, W, 2)`` its prefixes in the last ``lengths[i] + 1``
    columns. ``r`` ``(T, 2, N)`` is padded to the round's longest stream.
    """

    members: list[int]
    lengths: list[int]
    ys: torch.Tensor
    score: torch.Tensor
    att: torch.Tensor
    log_psi: torch.Tensor
    cache: Any
    r: torch.Tensor | None
    frontier: torch.Tensor | None
    memory_kv: list[tuple[torch.Tensor, torch.Tensor]]
    memory_mask: torch.Tensor | None
    lm_states: list[Any] | None = None  # per stream: the LM state of its rows (with an LM)
    lm_sum: torch.Tensor | None = None  # (N,) summed LM log-probabilities (with an LM)


@dataclass
class _Step:
    """One search step's picks, ``beam`` per stream: parent rows, tokens, total scores,
    summed decoder log-probabilities and CTC prefix scores; the decoder's new cache (and,
    with an LM, the summed LM log-probabilities and its new state per stream)."""

    parent: torch.Tensor
    token: torch.Tensor
    score: torch.Tensor
    att: torch.Tensor
    psi: torch.Tensor | None
    cache: Any
    lm: torch.Tensor | None = None
    lm_states: list[Any] | None = None


def _end_detected(hyps: list[Hypothesis], step: int) -> bool:
    """ESPnet's ``end_detect``: the ended hypotheses of each of the last 3 lengths are all
    ``e^10`` less likely than the best ended one."""
    if not hyps:
        return False
    best = max(h.score for h in hyps)
    count = 0
    for m in range(3):
        same = [h.score for h in hyps if len(h.tokens) + 2 == step - m]
        if same and max(same) - best < -10.0:
            count += 1
    return count == 3


class BlockwiseBeamSearch:
    """The blockwise synchronous search of one model; states are per stream.

    Args:
        model: encoder/CTC/decoder model (:class:`ASRModelLike`) whose decoder steps one
            token at a time (``incremental()`` and ``memory_kv()``, as
            ``espnet_model.TransformerDecoder``).
        block_size / hop_size / look_ahead: the encoder's (``encoder_conf``).
        beam_size, ctc_weight, penalty, pre_beam_ratio: as in ``BeamSearch``.
        maxlenratio: ``0``: at most one token per encoder frame and end detection.
        disable_repetition_detection: do not stop a block at a repeated token.
        lm: a language model over the same vocabulary (:class:`LMLike`, e.g.
            ``espnet_model.lm.LanguageModel`` in eval mode) for shallow fusion.
        lm_weight: weight of the LM score; ``0`` (or no ``lm``) searches without it.
    """

    def __init__(
        self,
        model: ASRModelLike,
        *,
        block_size: int,
        hop_size: int,
        look_ahead: int,
        beam_size: int = 10,
        ctc_weight: float = 0.3,
        penalty: float = 0.0,
        pre_beam_ratio: float = 1.5,
        maxlenratio: float = 0.0,
        disable_repetition_detection: bool = False,
        lm: LMLike | None = None,
        lm_weight: float = 0.0,
    ) -> None:
        if model.decoder is None or ctc_weight >= 1.0:
            raise ValueError(
                "the blockwise joint search needs an attention decoder and ctc_weight < 1; "
                "use the ctc_prefix mode for a CTC-only model"
            )
        if model.ctc is None and ctc_weight > 0:
            raise ValueError("the model has no CTC head; set ctc_weight: 0.0")
        if beam_size < 1 or not 0.0 <= ctc_weight < 1.0 or maxlenratio < 0:
            raise ValueError(
                f"beam_size={beam_size} must be >= 1, ctc_weight={ctc_weight} in [0, 1), "
                f"maxlenratio={maxlenratio} >= 0"
            )
        decoder = model.decoder
        if not (hasattr(decoder, "incremental") and hasattr(decoder, "memory_kv")):
            raise ValueError(
                f"the blockwise joint search steps the decoder one token at a time "
                f"(decoder.incremental() and decoder.memory_kv(), as espnet_model's "
                f"TransformerDecoder has); {type(decoder).__name__} has not both"
            )
        self.lm, self.lm_weight = fused_lm(lm, lm_weight, int(model.vocab_size))
        self.model = model
        self.decoder: Any = decoder
        self.stepper = decoder.incremental()  # weights laid out once for one-token steps
        self.first = block_size - look_ahead
        self.hop = hop_size
        self.beam_size = beam_size
        self.ctc_weight = float(ctc_weight)
        self.penalty = float(penalty)
        self.pre_beam_ratio = pre_beam_ratio
        self.maxlenratio = maxlenratio
        self.repetition = not disable_repetition_detection
        self.eos = int(model.sos_eos_id)
        self.blank = int(model.blank_id)
        self.vocab = int(model.vocab_size)
        self.filler = next(t for t in range(self.vocab) if t not in (self.eos, self.blank))

    # -- per stream ---------------------------------------------------------------------

    def extend(
        self, state: BlockwiseState, enc: torch.Tensor, logp: torch.Tensor | None, final: bool
    ) -> list[int]:
        """Add encoder frames ``(n, D)`` (and their CTC log-probabilities ``(n, V)``), search
        every block that is complete (all of them with ``final``); returns the best
        hypothesis so far (final: the result)."""
        self.extend_streams([state], [enc], [logp], [final])
        return self.best(state)[0]

    def extend_streams(
        self,
        states: Sequence[BlockwiseState],
        encs: Sequence[torch.Tensor],
        logps: Sequence[torch.Tensor | None],
        finals: Sequence[bool],
    ) -> None:
        """:meth:`extend` for several streams at once (distinct states): the blocks they
        complete are searched together, each stream's k-th block in round k."""
        if len({id(s) for s in states}) != len(states):
            raise ValueError("a stream's state appears twice; extend each stream once per call")
        for state in states:
            if state.done:
                raise ValueError("this stream's search has finished; start a new state")
        queues: list[list[_Block]] = []
        for state, enc, logp, final in zip(states, encs, logps, finals, strict=True):
            state.enc = enc if state.enc is None else torch.cat([state.enc, enc])
            if logp is not None:
                logp = logp.float()
                state.logp = logp if state.logp is None else torch.cat([state.logp, logp])
            queues.append(self._blocks(state, final))
        for k in range(max((len(q) for q in queues), default=0)):
            blocks = [q[k] for q in queues if len(q) > k]
            self._search(blocks)
            for block in blocks:
                if block.final:
                    block.state.done = True
                else:
                    block.state.blocks += 1
        for state, final in zip(states, finals, strict=True):
            if final:
                state.done = True

    def best(self, state: BlockwiseState) -> tuple[list[int], float]:
        """Best ended hypothesis when the search is done, else the best running one."""
        hyp = self.best_hypothesis(state)
        return list(hyp.tokens), hyp.score

    def best_hypothesis(self, state: BlockwiseState) -> Hypothesis:
        """:meth:`best` with its score's parts (``att``; ``ctc`` and ``lm`` when used)."""
        if state.done and state.ended:
            return max(state.ended, key=lambda h: h.score)
        run = state.running
        if run is None or run.ys.size(0) == 0:
            return Hypothesis(tokens=[], score=0.0, scores={})
        row = int(run.score.argmax())
        parts = {"att": float(run.att[row])}
        if self.ctc_weight:
            parts["ctc"] = float(run.log_psi[row])
        if run.lm_sum is not None:
            parts["lm"] = float(run.lm_sum[row])
        return Hypothesis(tokens=run.ys[row, 1:].tolist(), score=float(run.score[row]), scores=parts)

    def nbest(self, state: BlockwiseState, n: int) -> list[Hypothesis]:
        return sorted(state.ended or [], key=lambda h: -h.score)[:n]

    # -- a round: one block of each of several streams ----------------------------------

    def _blocks(self, state: BlockwiseState, final: bool) -> list[_Block]:
        """The blocks a stream can search now: every complete one, then (``final``) the
        rest of its frames."""
        assert state.enc is not None
        total = state.enc.size(0)
        blocks = []
        index = state.blocks
        while self.first + self.hop * index < total:
            blocks.append(self._block(state, self.first + self.hop * index, final=False))
            index += 1
        if final and total:
            blocks.append(self._block(state, total, final=True))
        return blocks

    def _block(self, state: BlockwiseState, frames: int, *, final: bool) -> _Block:
        maxlen = frames if self.maxlenratio == 0 else max(1, int(self.maxlenratio * frames))
        return _Block(state=state, frames=frames, final=final, maxlen=maxlen)

    def _search(self, blocks: list[_Block]) -> None:
        """Search one block of each stream, all streams stepping together."""
        self._start(blocks)
        ctc = None
        if self.ctc_weight:
            ctc = StreamsCTC(
                [b.state.logp[: b.frames] for b in blocks],  # type: ignore[index]
                blank_id=self.blank,
                eos_id=self.eos,
            )
        going = []
        for u, block in enumerate(blocks):
            run = block.state.running
            assert run is not None
            # A block that stops before its first step leaves the running hypotheses as
            # they are (nothing was accepted to step back over).
            if not self._stops(block, run.ys.size(0) > 0):
                going.append(u)
        if not going:
            return
        batch = self._pack(blocks, going, ctc)
        prev: _Batch | None = None  # the batch before the last step
        while True:
            alive = torch.isfinite(batch.score).view(-1, self.beam_size).any(1).tolist()
            stay = []
            for i, u in enumerate(batch.members):
                if self._stops(blocks[u], alive[i]):
                    self._leave(blocks[u], u, batch, prev)
                else:
                    stay.append(i)
            if not stay:
                return
            if len(stay) < len(batch.members):
                batch = self._only(batch, stay)
            step = self._expand(batch, ctc)
            ends, repeats = self._decisions(batch, step)
            kept = []
            for i, u in enumerate(batch.members):
                block = blocks[u]
                if not block.final and (ends[i] or repeats[i]):
                    self._leave(block, u, batch, prev)  # premature: wait for the next block
                    continue
                if ends[i]:
                    self._collect_ended(block, batch, i, step)
                kept.append(i)
            if not kept:
                return
            prev, batch = batch, self._advance(batch, step, kept, ctc)
            for i, u in enumerate(batch.members):
                block = blocks[u]
                block.state.step += 1
                block.accepted += 1
                if block.final and block.state.step >= block.maxlen:
                    self._collect_running(block, batch, i)  # ends with maxlen tokens

    def _stops(self, block: _Block, alive: bool) -> bool:
        """Whether a stream's block ends before its next step. On end detection (last
        block) its running hypotheses are dropped: its result is an ended one."""
        state = block.state
        if not alive or state.step >= block.maxlen:
            return True
        if block.final and self.maxlenratio == 0.0:
            assert state.ended is not None
            if _end_detected(state.ended, state.step):
                block.accepted = -1  # marks the drop for _leave
                state.running = None
                return True
        return False

    def _leave(self, block: _Block, member: int, batch: _Batch, prev: _Batch | None) -> None:
        """A stream's block has ended: its running hypotheses go back to its state; a
        non-final block steps back over its last accepted step."""
        state = block.state
        if block.accepted < 0:  # end detected: nothing runs on
            return
        source = batch
        if not block.final and block.accepted and state.step > 1:
            assert prev is not None
            source = prev
            state.step -= 1
        state.running = self._extract(source, source.members.index(member), block.frames)

    # -- the batch ----------------------------------------------------------------------

    def _start(self, blocks: list[_Block]) -> None:
        """A stream's first block starts its search; a later one carries the CTC forward
        variables of its hypotheses over the new frames (all streams at once)."""
        grow = []
        for block in blocks:
            state = block.state
            if state.running is None:
                self._init(state, block.frames)
            elif self.ctc_weight:
                assert state.running.r is not None
                if state.running.r.size(0) < block.frames:
                    grow.append(block)
        if not grow:
            return
        runs = [b.state.running for b in grow]
        frontiers, rs, psis = extend_frontiers(
            [run.frontier for run in runs],  # type: ignore[union-attr,misc]
            [run.ys[:, 1:] for run in runs],  # type: ignore[union-attr]
            [run.log_psi for run in runs],  # type: ignore[union-attr]
            [b.state.logp[b.state.running.r.size(0) : b.frames] for b in grow],  # type: ignore[index,union-attr]
            blank_id=self.blank,
        )
        for run, frontier, r, psi in zip(runs, frontiers, rs, psis, strict=True):
            assert run is not None and run.r is not None
            run.frontier, run.r, run.log_psi = frontier, torch.cat([run.r, r]), psi
            run.score = (
                (1.0 - self.ctc_weight) * run.att
                + self.ctc_weight * psi
                + self.penalty * (run.ys.size(1) - 1)
            )
            if run.lm_sum is not None:
                run.score = run.score + self.lm_weight * run.lm_sum

    def _init(self, state: BlockwiseState, frames: int) -> None:
        assert state.enc is not None
        device = state.enc.device
        r = frontier = None
        if self.ctc_weight:
            assert state.logp is not None
            r = torch.full((frames, 2, 1), LOGZERO, device=device)
            r[:, 1, 0] = torch.cumsum(state.logp[:frames, self.blank], dim=0)
            frontier = torch.full((1, 1, 2), LOGZERO, device=device)
            frontier[0, 0, 1] = r[-1, 1, 0]
        state.running = _Running(
            ys=torch.full((1, 1), self.eos, dtype=torch.long, device=device),
            score=torch.zeros(1, device=device),
            att=torch.zeros(1, device=device),
            cache=None,
            r=r,
            frontier=frontier,
            log_psi=torch.zeros(1, device=device),
            lm_sum=torch.zeros(1, device=device) if self.lm is not None else None,
        )
        state.ended = []

    def _pack(self, blocks: list[_Block], members: list[int], ctc: StreamsCTC | None) -> _Batch:
        """The running hypotheses of ``members`` in ``beam`` slots each (an empty slot
        copies the stream's first row and scores -inf), and their memories."""
        beam = self.beam_size
        runs: list[_Running] = []
        for u in members:
            run = blocks[u].state.running
            assert run is not None
            runs.append(run)
        width = max(run.ys.size(1) for run in runs)
        device = runs[0].ys.device
        empty = torch.arange(beam, device=device)
        ys, score, att, log_psi, caches, r, frontier = [], [], [], [], [], [], []
        lm_states: list[Any] = []
        lm_sum: list[torch.Tensor] = []
        for run in runs:
            n = run.ys.size(0)
            index = torch.cat([torch.arange(n, device=device), empty.new_zeros(beam - n)])
            pad = width - run.ys.size(1)
            ys.append(F.pad(run.ys.index_select(0, index), (pad, 0), value=-1))
            score.append(run.score.index_select(0, index).masked_fill(empty >= n, _NEG_INF))
            att.append(run.att.index_select(0, index))
            log_psi.append(run.log_psi.index_select(0, index))
            caches.append(None if run.cache is None else run.cache.select(index))
            if self.lm is not None:
                assert run.lm_sum is not None
                lm_states.append(None if run.lm is None else run.lm.select(index))
                lm_sum.append(run.lm_sum.index_select(0, index))
            if ctc is not None:
                assert run.r is not None and run.frontier is not None
                r.append(ctc.padded(run.r.index_select(2, index)))
                frontier.append(
                    F.pad(run.frontier.index_select(0, index), (0, 0, pad, 0), value=LOGZERO)
                )
        memory, mask = self._memory([blocks[u] for u in members])
        return _Batch(
            members=list(members),
            lengths=[run.ys.size(1) - 1 for run in runs],
            ys=torch.cat(ys),
            score=torch.cat(score),
            att=torch.cat(att),
            log_psi=torch.cat(log_psi),
            cache=_join_caches(caches, beam),
            r=torch.cat(r, dim=2) if ctc is not None else None,
            frontier=torch.cat(frontier) if ctc is not None else None,
            memory_kv=self.decoder.memory_kv(memory),
            memory_mask=mask,
            lm_states=lm_states if self.lm is not None else None,
            lm_sum=torch.cat(lm_sum) if self.lm is not None else None,
        )

    def _memory(self, blocks: list[_Block]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The blocks' encoder frames padded ``(S, T, D)`` and their keep-mask ``(S, 1, T)``
        (None when none is padded)."""
        encs = []
        for block in blocks:
            assert block.state.enc is not None
            encs.append(block.state.enc[: block.frames])
        memory = torch.nn.utils.rnn.pad_sequence(encs, batch_first=True)
        frames = torch.tensor([enc.size(0) for enc in encs], device=memory.device)
        if int(frames.min()) == memory.size(1):
            return memory, None
        return memory, (torch.arange(memory.size(1), device=memory.device) < frames[:, None])[
            :, None
        ]

    def _rows(self, slots: list[int], device: torch.device) -> torch.Tensor:
        """The rows of the streams in ``slots`` (positions in a batch), in order."""
        beam = self.beam_size
        index = torch.tensor(slots, device=device)
        return (index[:, None] * beam + torch.arange(beam, device=device)).view(-1)

    def _only(self, batch: _Batch, slots: list[int]) -> _Batch:
        """The batch of the streams in ``slots`` only."""
        rows = self._rows(slots, batch.ys.device)
        streams = torch.tensor(slots, device=batch.ys.device)
        return _Batch(
            members=[batch.members[i] for i in slots],
            lengths=[batch.lengths[i] for i in slots],
            ys=batch.ys.index_select(0, rows),
            score=batch.score.index_select(0, rows),
            att=batch.att.index_select(0, rows),
            log_psi=batch.log_psi.index_select(0, rows),
            cache=None if batch.cache is None else batch.cache.select(rows),
            r=None if batch.r is None else batch.r.index_select(2, rows),
            frontier=None if batch.frontier is None else batch.frontier.index_select(0, rows),
            memory_kv=[
                (k.index_select(0, streams), v.index_select(0, streams)) for k, v in batch.memory_kv
            ],
            memory_mask=None
            if batch.memory_mask is None
            else batch.memory_mask.index_select(0, streams),
            lm_states=None if batch.lm_states is None else [batch.lm_states[i] for i in slots],
            lm_sum=None if batch.lm_sum is None else batch.lm_sum.index_select(0, rows),
        )

    def _extract(self, batch: _Batch, slot: int, frames: int) -> _Running:
        """The running hypotheses of the stream in ``slot`` of ``batch``, its empty slots
        left out, over its ``frames`` frames."""
        beam = self.beam_size
        rows = torch.arange(slot * beam, (slot + 1) * beam, device=batch.ys.device)
        rows = rows[torch.isfinite(batch.score.index_select(0, rows))]
        begin = batch.ys.size(1) - 1 - batch.lengths[slot]
        lm = None
        if batch.lm_states is not None and batch.lm_states[slot] is not None:
            lm = batch.lm_states[slot].select(rows - slot * beam)
        return _Running(
            ys=batch.ys.index_select(0, rows)[:, begin:],
            score=batch.score.index_select(0, rows),
            att=batch.att.index_select(0, rows),
            cache=None if batch.cache is None else batch.cache.select(rows),
            r=None if batch.r is None else batch.r[:frames].index_select(2, rows),
            frontier=(
                None if batch.frontier is None else batch.frontier.index_select(0, rows)[:, begin:]
            ),
            log_psi=batch.log_psi.index_select(0, rows),
            lm=lm,
            lm_sum=None if batch.lm_sum is None else batch.lm_sum.index_select(0, rows),
        )

    # -- one step -----------------------------------------------------------------------

    def _expand(self, batch: _Batch, ctc: StreamsCTC | None) -> _Step:
        """One search step of every stream: the ``beam`` best (parent row, token) pairs of
        each, their total scores, summed decoder log-probabilities and CTC prefix scores,
        and the decoder's cache of the rows before selection."""
        beam, streams = self.beam_size, len(batch.members)
        device = batch.ys.device
        tokens = batch.ys[:, -1]
        positions = torch.tensor(batch.lengths, device=device).repeat_interleave(beam)
        att_logp, cache = self.stepper.step(
            tokens, positions, batch.memory_kv, batch.memory_mask, batch.cache
        )
        att_logp = att_logp.float()
        full = (1.0 - self.ctc_weight) * att_logp
        lm_logp: torch.Tensor | None = None
        lm_states: list[Any] | None = None
        if self.lm is not None:
            lm_logp, lm_states = self._score_lm(batch)
            full = full + self.lm_weight * lm_logp
        psi_all: torch.Tensor | None = None
        if ctc is not None:
            assert batch.r is not None
            width = min(int(self.pre_beam_ratio * beam), self.vocab)
            top = full.topk(width, dim=1).indices
            eos = torch.full((top.size(0), 1), self.eos, dtype=torch.long, device=device)
            cand = torch.cat([top, eos], dim=1)
            cand_scores = full.gather(1, cand)
            cand_scores[:, -1].masked_fill_((top == self.eos).any(dim=1), _NEG_INF)
            last = tokens.masked_fill(positions == 0, -1)
            utt = torch.tensor(batch.members, device=device).repeat_interleave(beam)
            psi_all = ctc.score(batch.r, last, positions, utt, cand)
            cand_scores = cand_scores + self.ctc_weight * (psi_all - batch.log_psi[:, None])
        else:
            cand = torch.arange(self.vocab, device=device)[None].expand(tokens.size(0), -1)
            cand_scores = full
        cand_scores = cand_scores.masked_fill(cand == self.blank, _NEG_INF)
        total = (batch.score[:, None] + cand_scores + self.penalty).view(streams, -1)
        best, flat = total.topk(beam, dim=1)
        width = cand.size(1)
        base = torch.arange(streams, device=device)[:, None] * beam
        parent = (base + flat // width).view(-1)
        token = cand.reshape(streams, -1).gather(1, flat).view(-1)
        psi = None if psi_all is None else psi_all.reshape(streams, -1).gather(1, flat).view(-1)
        att = batch.att.index_select(0, parent) + att_logp[parent, token]
        lm = None
        if lm_logp is not None:
            assert batch.lm_sum is not None
            lm = batch.lm_sum.index_select(0, parent) + lm_logp[parent, token]
        return _Step(
            parent=parent, token=token, score=best.view(-1), att=att, psi=psi, cache=cache,
            lm=lm, lm_states=lm_states,
        )

    def _score_lm(self, batch: _Batch) -> tuple[torch.Tensor, list[Any]]:
        """The LM's next-token log-probabilities ``(N, V)`` of every row, one call per
        stream (its rows share a length), and each stream's new LM state."""
        assert self.lm is not None and batch.lm_states is not None
        beam, width = self.beam_size, batch.ys.size(1)
        parts, states = [], []
        for i, length in enumerate(batch.lengths):
            ys = batch.ys[i * beam : (i + 1) * beam, width - 1 - length :]
            logp, state = self.lm.batch_score(ys, batch.lm_states[i])
            parts.append(logp.float())
            states.append(state)
        return torch.cat(parts), states

    def _decisions(self, batch: _Batch, step: _Step) -> tuple[list[bool], list[bool]]:
        """Per stream: whether a pick ends a hypothesis (``eos``), and whether one repeats
        a token its hypothesis holds (False without repetition detection)."""
        finite = torch.isfinite(step.score)
        eos = finite & (step.token == self.eos)
        ends = eos.view(-1, self.beam_size).any(1).tolist()
        if not self.repetition:
            return ends, [False] * len(ends)
        # sos is eos and padding -1, so only the hypothesis's tokens can match a non-eos pick
        held = (batch.ys.index_select(0, step.parent) == step.token[:, None]).any(1)
        repeats = (held & finite & ~eos).view(-1, self.beam_size).any(1).tolist()
        return ends, repeats

    def _collect_ended(self, block: _Block, batch: _Batch, slot: int, step: _Step) -> None:
        """The picks of stream ``slot`` that chose ``eos`` end (its last block)."""
        assert block.state.ended is not None
        beam = self.beam_size
        rows = range(slot * beam, (slot + 1) * beam)
        scores, tokens = step.score.tolist(), step.token.tolist()
        length = batch.lengths[slot]
        for i in rows:
            if tokens[i] != self.eos or scores[i] == _NEG_INF:
                continue
            parent = int(step.parent[i])
            hyp_tokens = batch.ys[parent, batch.ys.size(1) - length :].tolist() if length else []
            parts = {"att": float(step.att[i])}
            if step.psi is not None:
                parts["ctc"] = float(step.psi[i])
            if step.lm is not None:
                parts["lm"] = float(step.lm[i])
            block.state.ended.append(Hypothesis(tokens=hyp_tokens, score=scores[i], scores=parts))

    def _collect_running(self, block: _Block, batch: _Batch, slot: int) -> None:
        """Every running hypothesis of stream ``slot`` ends (``maxlen`` tokens reached)."""
        assert block.state.ended is not None
        run = self._extract(batch, slot, block.frames)
        for row in range(run.ys.size(0)):
            block.state.ended.append(
                Hypothesis(
                    tokens=run.ys[row, 1:].tolist(),
                    score=float(run.score[row]),
                    scores={"att": float(run.att[row])}
                    | ({} if run.lm_sum is None else {"lm": float(run.lm_sum[row])}),
                )
            )

    def _advance(
        self, batch: _Batch, step: _Step, slots: list[int], ctc: StreamsCTC | None
    ) -> _Batch:
        """The batch after the step, for the streams in ``slots``: each pick that did not
        end becomes a running hypothesis; ended and empty picks leave empty slots."""
        device = batch.ys.device
        rows = self._rows(slots, device)
        parent = step.parent.index_select(0, rows)
        token = step.token.index_select(0, rows)
        best = step.score.index_select(0, rows)
        running = torch.isfinite(best) & (token != self.eos)
        token = token.masked_fill(~running, self.filler)
        r = frontier = None
        log_psi = batch.log_psi.index_select(0, parent)
        if ctc is not None and step.psi is not None:
            assert batch.r is not None and batch.frontier is not None
            positions = torch.tensor(batch.lengths, device=device).repeat_interleave(self.beam_size)
            last = batch.ys[:, -1].masked_fill(positions == 0, -1)
            utt = torch.tensor(batch.members, device=device).repeat_interleave(self.beam_size)
            r = ctc.extend(batch.r, last, positions, utt, parent, token)
            end = ctc.lengths.index_select(0, utt.index_select(0, parent)) - 1
            newest = r[end, :, torch.arange(r.size(2), device=device)]  # (M, 2)
            frontier = torch.cat([batch.frontier.index_select(0, parent), newest[:, None]], dim=1)
            log_psi = step.psi.index_select(0, rows)
        lm_states = None
        if step.lm_states is not None:
            beam = self.beam_size
            lm_states = [
                step.lm_states[i].select(parent[k * beam : (k + 1) * beam] - i * beam)
                for k, i in enumerate(slots)
            ]
        streams = torch.tensor(slots, device=device)
        return _Batch(
            members=[batch.members[i] for i in slots],
            lengths=[batch.lengths[i] + 1 for i in slots],
            ys=torch.cat([batch.ys.index_select(0, parent), token[:, None]], dim=1),
            score=best.masked_fill(~running, _NEG_INF),
            att=step.att.index_select(0, rows),
            log_psi=log_psi,
            cache=step.cache.select(parent),
            r=r,
            frontier=frontier,
            memory_kv=(
                batch.memory_kv
                if len(slots) == len(batch.members)
                else [
                    (k.index_select(0, streams), v.index_select(0, streams))
                    for k, v in batch.memory_kv
                ]
            ),
            memory_mask=(
                batch.memory_mask
                if batch.memory_mask is None or len(slots) == len(batch.members)
                else batch.memory_mask.index_select(0, streams)
            ),
            lm_states=lm_states,
            lm_sum=None if step.lm is None else step.lm.index_select(0, rows),
        )


def _join_caches(caches: list[Any], rows: int) -> Any:
    """The decoder caches of several streams (``rows`` prefixes each, None before their
    first step) as one."""
    present = [cache for cache in caches if cache is not None]
    if not present:
        return None
    return type(present[0]).join(caches, [rows] * len(caches))
