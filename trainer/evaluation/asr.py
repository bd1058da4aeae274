"""Intelligibility: word and character error rates of speech, as an offline English recogniser hears it.

A synthesised sentence that a recogniser transcribes back to its text is one a listener can
follow; alignment figures and mel distances cannot say that. The recogniser is pocketsphinx,
whose wheel bundles an English acoustic model, dictionary and language model (nothing to
download), with jiwer for the error rates: the optional ``asr`` extra (``pip install
'.[asr]'``). It hears clear synthetic voices well (flite's rms, kal16, awb: WER 0.09-0.15
on their own audio) and eSpeak NG poorly (0.85), so English intelligibility is measured on
flite corpora (``trainer make-corpus --engine flite``).

Both sides are normalised alike (``normalize``) before scoring. The figures are corpus-level:
WER = word edits / reference words over all utterances, CER likewise over characters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torchaudio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ASR_LANGUAGES", "RECOGNISER_RATE", "AsrScorer", "error_rates", "normalize", "seen_unseen_rates",
           "transcribe", "unavailable_reason", "vocabulary", "word_hits"]

ASR_LANGUAGES = ("en",)  # the bundled recogniser's model is English
RECOGNISER_RATE = 16000  # Hz: the rate pocketsphinx's bundled model was trained at
# A voice whose own recordings, vocoded, come back with more word errors than this is one the
# recogniser cannot hear (eSpeak NG scores about 0.85): its fr_wer would measure the recogniser.
CEILING_LIMIT = 0.5


def unavailable_reason(lang: str) -> str | None:
    """Return why intelligibility cannot be measured for ``lang`` here (one line), or None when it can."""
    if lang not in ASR_LANGUAGES:
        return f"the bundled recogniser understands {', '.join(ASR_LANGUAGES)} only, not {lang!r}"
    missing = [name for name in ("pocketsphinx", "jiwer") if not _importable(name)]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install 'smart-tuner[asr]', or '.[asr]' in a checkout)"
    return None


def _importable(name: str) -> bool:
    try:
        __import__(name)  # lazy: optional packages of the asr extra
    except ImportError:
        return False
    return True


_NOT_SPOKEN = re.compile(r"[^a-z0-9' ]+")


def normalize(text: str) -> str:
    """Return ``text`` lower-cased, with everything but letters, digits, apostrophes and single spaces removed.

    >>> normalize("Hello, World!  It's   ten-thirty.")
    "hello world it's ten thirty"
    """
    return " ".join(_NOT_SPOKEN.sub(" ", text.lower()).split())


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[float, float]:
    """Return (WER, CER) of ``hypotheses`` against ``references``, corpus-level, after ``normalize``.

    An empty hypothesis costs every word of its reference (all deletions); a reference that
    normalises to nothing is a ValueError (there is nothing to recognise).
    """
    import jiwer  # lazy: optional (asr extra)

    if len(references) != len(hypotheses) or not references:
        raise ValueError(f"need as many hypotheses as references (> 0), got {len(hypotheses)} and {len(references)}")
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    if not all(refs):
        raise ValueError(f"a reference has no words after normalisation: {references[refs.index('')]!r}")
    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))


def word_hits(references: Sequence[str], hypotheses: Sequence[str]) -> list[list[tuple[str, bool]]]:
    """Return, for each reference, its normalised words and whether the recogniser got each one.

    A word is got when the minimum-edit alignment of hypothesis to reference (jiwer's) pairs it
    with the same word; a substituted or deleted word is missed. Insertions belong to no
    reference word, so they count in the WER of all words only.

    >>> word_hits(["The cat sat."], ["the bat sat down"])
    [[('the', True), ('cat', False), ('sat', True)]]
    """
    import jiwer  # lazy: optional (asr extra)

    if len(references) != len(hypotheses) or not references:
        raise ValueError(f"need as many hypotheses as references (> 0), got {len(hypotheses)} and {len(references)}")
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) or "<nothing>" for h in hypotheses]  # jiwer refuses an empty hypothesis
    output = jiwer.process_words(refs, hyps)
    hits = []
    for ref, chunks in zip(refs, output.alignments, strict=True):
        words = ref.split()
        got = [False] * len(words)
        for chunk in chunks:
            if chunk.type == "equal":
                got[chunk.ref_start_idx:chunk.ref_end_idx] = [True] * (chunk.ref_end_idx - chunk.ref_start_idx)
        hits.append(list(zip(words, got, strict=True)))
    return hits


def vocabulary(texts: Sequence[str]) -> frozenset[str]:
    """Return the normalised words of ``texts``: what a model trained on them has heard."""
    return frozenset(word for text in texts for word in normalize(text).split())


def seen_unseen_rates(references: Sequence[str], hypotheses: Sequence[str], seen: frozenset[str]) -> dict[str, float]:
    """Return the word error rate of the reference words in ``seen`` and of the others, separately.

    ``wer_seen`` = seen reference words missed (substituted or deleted) / seen reference words,
    ``wer_unseen`` likewise for words the model never heard in training; a group with no word
    is left out. (Insertions count in the WER of all words only: see ``word_hits``.)

    >>> seen_unseen_rates(["the cat sat", "a zebra"], ["the bat sat", "zebra"], frozenset({"the", "cat", "sat", "a"}))
    {'wer_seen': 0.5, 'wer_unseen': 0.0}
    """
    counts = {True: [0, 0], False: [0, 0]}  # heard in training? -> [missed, words]
    for sentence in word_hits(references, hypotheses):
        for word, got in sentence:
            counts[word in seen][0] += 0 if got else 1
            counts[word in seen][1] += 1
    return {f"wer_{name}": missed / words for name, (missed, words) in
            (("seen", counts[True]), ("unseen", counts[False])) if words}


@functools.lru_cache(maxsize=1)
def _decoder() -> Any:
    from pocketsphinx import Decoder  # lazy: optional (asr extra); loading the model takes ~0.3 s

    return Decoder(samprate=RECOGNISER_RATE, loglevel="FATAL")


def transcribe(wav: torch.Tensor, sample_rate: int) -> str:
    """Return what the recogniser hears in ``wav`` (samples,) at ``sample_rate`` Hz ('' for silence)."""
    audio = torchaudio.functional.resample(wav.detach().float().cpu().reshape(-1), sample_rate, RECOGNISER_RATE)
    peak = float(audio.abs().max()) if audio.numel() else 0.0
    if peak > 0:
        audio = audio * (0.9 / peak)  # the recogniser's front end expects a normal level
    pcm = (audio.clamp(-1, 1) * 32767).to(torch.int16).numpy().astype(np.int16)
    decoder = _decoder()
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


@dataclass
class AsrScorer:
    """Scores free-running speech at each validation; the resynthesis ceiling of each sentence is computed once.

    ``vocode`` turns a log-mel (80, frames) into a waveform at ``sample_rate`` (Griffin-Lim
    unless a vocoder is configured). The ceiling is the same figure for the *reference*
    mels vocoded the same way: what a perfect acoustic model would score with this vocoder.
    When the ceiling's WER exceeds ``CEILING_LIMIT`` the recogniser cannot hear this voice:
    scoring stops for the run and ``off_reason`` says why in one line.
    """

    vocode: Callable[[torch.Tensor], torch.Tensor]
    sample_rate: int
    seen: frozenset[str] | None = None  # the training texts' words (``vocabulary``): gives fr_wer_seen/unseen
    off_reason: str | None = None
    _ceiling: dict[str, str] = field(default_factory=dict)  # utterance id -> what the recogniser heard

    def score(self, ids: Sequence[str], texts: Sequence[str], predicted: Sequence[torch.Tensor],
              references: Sequence[torch.Tensor]) -> dict[str, float]:
        """Return {fr_wer, fr_cer, fr_wer_ceiling, fr_cer_ceiling} for the predicted and reference mels of ``ids``,
        with ``seen`` also fr_wer_seen and fr_wer_unseen (``seen_unseen_rates``; a group with no word
        in these sentences is left out). Empty when scoring is off (``off_reason``).
        """
        if self.off_reason is not None:
            return {}
        for utterance, mel in zip(ids, references, strict=True):
            if utterance not in self._ceiling:
                self._ceiling[utterance] = transcribe(self.vocode(mel), self.sample_rate)
        wer_ceiling, cer_ceiling = error_rates(texts, [self._ceiling[u] for u in ids])
        if wer_ceiling > CEILING_LIMIT:
            self.off_reason = (f"intelligibility (fr_wer) is off: the recogniser hears only {1 - wer_ceiling:.0%} "
                               f"of the words of this voice's own recordings (resynthesis WER {wer_ceiling:.2f} > "
                               f"{CEILING_LIMIT}); it needs a voice it understands, e.g. a flite corpus")
            return {}
        heard = [transcribe(self.vocode(mel), self.sample_rate) if mel.shape[-1] else "" for mel in predicted]
        wer, cer = error_rates(texts, heard)
        split = {} if self.seen is None else seen_unseen_rates(texts, heard, self.seen)
        return {"fr_wer": wer, "fr_cer": cer, "fr_wer_ceiling": wer_ceiling, "fr_cer_ceiling": cer_ceiling,
                **{f"fr_{name}": value for name, value in split.items()}}
