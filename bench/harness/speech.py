"""What a recogniser hears of a corpus's own recordings: the floor and the ceiling every WER is read against."""

from __future__ import annotations

from pathlib import Path


def reference_rates(corpus: Path) -> dict[str, float]:
    """Return the WER/CER of ``corpus``'s recordings (``natural_*``) and of their Griffin-Lim resynthesis
    (``ceiling_*``: what a perfect acoustic model would score with this vocoder)."""
    from trainer.audio import mel as audio
    from trainer.data.corpus import read_corpus
    from trainer.evaluation.asr import error_rates, transcribe

    items = read_corpus(corpus)
    texts = [item.text for item in items]
    natural, resynthesised = [], []
    for item in items:
        wav, _ = audio.load_audio(item.wav_path)
        natural.append(transcribe(wav, audio.SAMPLE_RATE))
        resynthesised.append(transcribe(audio.griffin_lim(audio.mel_spectrogram(wav, audio.SAMPLE_RATE)),
                                        audio.SAMPLE_RATE))
    wer, cer = error_rates(texts, natural)
    gl_wer, gl_cer = error_rates(texts, resynthesised)
    return {"natural_wer": wer, "natural_cer": cer, "ceiling_wer": gl_wer, "ceiling_cer": gl_cer}
