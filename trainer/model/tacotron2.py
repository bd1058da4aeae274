"""Tacotron2: encoder, location-sensitive attention, autoregressive decoder, postnet.

Follows NVIDIA/tacotron2 with three changes: dropout rates per module (prenet dropout
really applied at inference, at its own rate, since it is the model's only source of
variation there), a reduction factor r (r mel frames per decoder step: fewer, cheaper
steps and an easier alignment), and scheduled sampling (with probability 1 - ratio the
decoder is fed its own previous frame instead of the ground truth, as it will be at
inference).

Shapes: B batch, N text tokens, S decoder steps, F = S * r mel frames, M = 80 mel bands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from trainer.audio.mel import N_MELS
from trainer.config import TrainConfig
from trainer.model.contract import (
    TEXT_EMBEDDING,
    AcousticModel,
    Inference,
    ModelOutputs,
    StopThreshold,
    UtteranceNoise,
)
from trainer.model.masks import length_mask
from trainer.model.recurrent import LSTMCellWeights
from trainer.text.symbols import symbols

if TYPE_CHECKING:
    from trainer.data.batches import Batch

# One recurrent cell step: (input (B, in), (h, c) (B, H)) -> (h, c).
Cell = Callable[[torch.Tensor, tuple[torch.Tensor, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]


def _conv_bn(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(in_ch, out_ch, kernel, padding=kernel // 2), nn.BatchNorm1d(out_ch))


class Encoder(nn.Module):
    """Token ids (B, N) -> encoder states (B, N, E): 3 conv layers then a BiLSTM."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        m = cfg.model
        dims = [m.symbols_embedding_dim] + [m.encoder_embedding_dim] * m.encoder_n_convolutions
        self.convs = nn.ModuleList(_conv_bn(dims[i], dims[i + 1], m.encoder_kernel_size)
                                   for i in range(m.encoder_n_convolutions))
        self.dropout = cfg.encoder_dropout
        self.lstm = nn.LSTM(m.encoder_embedding_dim, m.encoder_embedding_dim // 2, batch_first=True,
                            bidirectional=True)

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Return (B, N, E) from embedded tokens (B, C, N) and true lengths (B,)."""
        # Zero the padding before every convolution so a short utterance in a padded batch
        # encodes exactly as it would alone.
        keep = length_mask(lengths, embedded.shape[2])[:, None, :]
        x = embedded * keep
        for conv in self.convs:
            x = F.dropout(F.relu(conv(x)), self.dropout, self.training) * keep
        packed = nn.utils.rnn.pack_padded_sequence(x.transpose(1, 2), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        outputs, _ = self.lstm(packed)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[2])
        return outputs


class Prenet(nn.Module):
    """Two ReLU layers with dropout that stays on at inference (at its own rate; 0 turns it off).

    Tacotron2 keeps prenet dropout at inference on purpose: it is the model's only source
    of variation and helps it not to lock onto its own errors. Passing ``training=False``
    to the dropout there would silently disable it.
    """

    def __init__(self, in_dim: int, size: int, train_rate: float, inference_rate: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_dim, size, bias=False), nn.Linear(size, size, bias=False)])
        self.train_rate = train_rate
        self.inference_rate = inference_rate

    def forward(self, x: torch.Tensor, noise: UtteranceNoise | None = None) -> torch.Tensor:
        """Return (..., size) from previous frames (..., in_dim); with ``noise`` (x is then (B, in_dim)),
        each utterance's dropout masks come from its own stream."""
        rate = self.train_rate if self.training else self.inference_rate
        for layer in self.layers:
            x = F.relu(layer(x))
            x = noise.dropout(x, rate) if noise is not None else F.dropout(x, p=rate, training=rate > 0)
        return x


class LocationSensitiveAttention(nn.Module):
    """Additive attention whose energies also see the previous and cumulative weights."""

    def __init__(self, query_dim: int, memory_dim: int, att_dim: int, n_filters: int, kernel: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, att_dim, bias=False)
        self.memory = nn.Linear(memory_dim, att_dim, bias=False)
        self.location_conv = nn.Conv1d(2, n_filters, kernel, padding=kernel // 2, bias=False)
        self.location = nn.Linear(n_filters, att_dim, bias=False)
        self.v = nn.Linear(att_dim, 1, bias=True)

    def location_kernel(self) -> torch.Tensor:
        """Return the location conv and its projection fused into one matrix (2 * K, A).

        Both are bias-free linear maps, so their product is one linear map of the K-wide
        window of (previous, cumulative) weights around each token. Applied as unfold +
        matmul it costs one small GEMM per decoder step instead of a convolution and a
        linear layer (on the CPU each call of the decoder loop costs overhead). Compute it once per pass.
        """
        fused = torch.einsum("af,fck->ack", self.location.weight, self.location_conv.weight)  # (A, 2, K)
        return fused.reshape(fused.shape[0], -1).t()

    def forward(self, query: torch.Tensor, memory: torch.Tensor, processed_memory: torch.Tensor,
                weights_cat: torch.Tensor, pad_mask: torch.Tensor,
                location_kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (context (B, E), weights (B, N)).

        query (B, Q); memory (B, N, E); processed_memory (B, N, A); weights_cat (B, 2, N)
        previous and cumulative weights; pad_mask (B, N) True on padding; location_kernel
        from ``location_kernel()``.
        """
        half = self.location_conv.kernel_size[0] // 2
        windows = F.pad(weights_cat, (half, half)).unfold(2, 2 * half + 1, 1)  # (B, 2, N, K)
        windows = windows.permute(0, 2, 1, 3).reshape(weights_cat.shape[0], weights_cat.shape[2], -1)
        location = windows @ location_kernel  # (B, N, A)
        energies = self.v(torch.tanh(self.query(query)[:, None, :] + location + processed_memory)).squeeze(-1)
        energies = energies.masked_fill(pad_mask, torch.finfo(energies.dtype).min)
        weights = F.softmax(energies, dim=1)
        context = torch.bmm(weights[:, None, :], memory).squeeze(1)
        return context, weights


class Postnet(nn.Module):
    """Five 1-D convolutions predicting a residual that sharpens the decoder's mel."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        n = cfg.model.postnet_n_convolutions
        dims = [N_MELS] + [cfg.model.postnet_embedding_dim] * (n - 1) + [N_MELS]
        self.convs = nn.ModuleList(_conv_bn(dims[i], dims[i + 1], cfg.model.postnet_kernel_size) for i in range(n))
        self.dropout = cfg.postnet_dropout

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Return the residual (B, M, F) for mel (B, M, F)."""
        x = mel
        for index, conv in enumerate(self.convs):
            x = conv(x)
            if index < len(self.convs) - 1:
                x = torch.tanh(x)
            x = F.dropout(x, self.dropout, self.training)
        return x


class Decoder(nn.Module):
    """Autoregressive decoder: prenet -> attention RNN -> attention -> decoder RNN -> r frames + gate."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        m = cfg.model
        enc = m.encoder_embedding_dim
        self.r = m.reduction_factor
        self.prenet = Prenet(N_MELS, m.prenet_dim, cfg.prenet_dropout, cfg.prenet_dropout_inference)
        self.attention_rnn = nn.LSTMCell(m.prenet_dim + enc, m.attention_rnn_dim)
        self.attention = LocationSensitiveAttention(m.attention_rnn_dim, enc, m.attention_dim,
                                                    m.attention_location_n_filters,
                                                    m.attention_location_kernel_size)
        self.decoder_rnn = nn.LSTMCell(m.attention_rnn_dim + enc, m.decoder_rnn_dim)
        self.projection = nn.Linear(m.decoder_rnn_dim + enc, N_MELS * self.r)
        self.gate = nn.Linear(m.decoder_rnn_dim + enc, 1)
        self.attention_dropout = cfg.attention_dropout
        self.decoder_dropout = cfg.decoder_dropout

    def _initial_state(self, memory: torch.Tensor) -> dict[str, torch.Tensor]:
        batch, n_tokens, enc = memory.shape
        zeros = memory.new_zeros
        return {
            "att_h": zeros(batch, self.attention_rnn.hidden_size),
            "att_c": zeros(batch, self.attention_rnn.hidden_size),
            "dec_h": zeros(batch, self.decoder_rnn.hidden_size), "dec_c": zeros(batch, self.decoder_rnn.hidden_size),
            "weights": zeros(batch, n_tokens), "weights_cum": zeros(batch, n_tokens), "context": zeros(batch, enc),
        }

    def _cells(self, device: torch.device) -> tuple[Cell, Cell]:
        """Return the (attention, decoder) LSTM cells for one training pass on ``device``.

        On the CPU, cells whose weight and bias gradients are formed once per pass instead of
        once per step (trainer/model/recurrent.py says why); elsewhere the modules, whose fused CUDA
        kernel measured faster (docs/PERFORMANCE.md).
        """
        if device.type == "cpu":
            return LSTMCellWeights(self.attention_rnn), LSTMCellWeights(self.decoder_rnn)
        return self.attention_rnn, self.decoder_rnn

    def _step(self, prenet_out: torch.Tensor, state: dict[str, torch.Tensor], memory: torch.Tensor,
              processed: torch.Tensor, pad_mask: torch.Tensor, location_kernel: torch.Tensor,
              cells: tuple[Cell, Cell]) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance one decoder step; return (hidden (B, D + E): decoder state and context, weights (B, N)).

        ``_project`` turns hidden states into frames and gate logits; the training pass
        applies it once to every step's hidden state (one product instead of one per step:
        each call of the loop costs overhead on CPU). ``cells`` are the (attention, decoder) LSTM cells.
        """
        attention_rnn, decoder_rnn = cells
        att_h, att_c = attention_rnn(torch.cat([prenet_out, state["context"]], -1),
                                     (state["att_h"], state["att_c"]))
        att_h = F.dropout(att_h, self.attention_dropout, self.training)
        weights_cat = torch.stack([state["weights"], state["weights_cum"]], dim=1)
        context, weights = self.attention(att_h, memory, processed, weights_cat, pad_mask, location_kernel)
        dec_h, dec_c = decoder_rnn(torch.cat([att_h, context], -1), (state["dec_h"], state["dec_c"]))
        dec_h = F.dropout(dec_h, self.decoder_dropout, self.training)
        state.update(att_h=att_h, att_c=att_c, dec_h=dec_h, dec_c=dec_c, context=context, weights=weights,
                     weights_cum=state["weights_cum"] + weights)
        return torch.cat([dec_h, context], -1), weights

    def _project(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (frames (..., r*M), gate logits (...)) of hidden states (..., D + E)."""
        return self.projection(hidden), self.gate(hidden).squeeze(-1)

    def forward(self, memory: torch.Tensor, pad_mask: torch.Tensor, targets: torch.Tensor,
                teacher_forcing: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (mel (B, M, F), gate (B, S), att (B, S, N)) decoding against targets (B, M, F).

        With probability 1 - ``teacher_forcing`` per utterance and step, the previous input
        is the model's own (detached) last predicted frame instead of the ground truth.
        """
        batch = memory.shape[0]
        steps = targets.shape[2] // self.r
        # Input of step s is the last ground-truth frame of step s-1 (zeros for s = 0).
        last_frames = targets.transpose(1, 2).reshape(batch, steps, self.r, N_MELS)[:, :, -1, :]
        inputs = torch.cat([last_frames.new_zeros(batch, 1, N_MELS), last_frames[:, :-1]], dim=1)
        processed = self.attention.memory(memory)
        location_kernel = self.attention.location_kernel()
        state = self._initial_state(memory)
        cells = self._cells(memory.device)
        # Fully teacher-forced, every step's input is known: one prenet call for all of them.
        # Unbound into steps, not indexed per step: each index's backward would zero-fill the
        # whole (B, S, P) gradient once per step; unbind's backward stacks the steps' gradients once.
        prenet_all = self.prenet(inputs).unbind(1) if teacher_forcing >= 1.0 else None  # S x (B, P)
        hiddens: list[torch.Tensor] = []
        alignments: list[torch.Tensor] = []
        for step in range(steps):
            if prenet_all is not None:
                prenet_out = prenet_all[step]
            else:
                frame = inputs[:, step]
                if step > 0:
                    # The own frame is fed back detached, so it needs no gradient: project without one.
                    with torch.no_grad():
                        own = self.projection(hiddens[-1]).view(batch, self.r, N_MELS)[:, -1]
                    use_own = torch.rand(batch, 1, device=memory.device) >= teacher_forcing
                    frame = torch.where(use_own, own, frame)
                prenet_out = self.prenet(frame)
            hidden, weights = self._step(prenet_out, state, memory, processed, pad_mask, location_kernel, cells)
            hiddens.append(hidden)
            alignments.append(weights)
        frames, gate = self._project(torch.stack(hiddens, 1))  # (B, S, r*M), (B, S)
        mel = frames.reshape(batch, steps * self.r, N_MELS).transpose(1, 2)
        return mel, gate, torch.stack(alignments, 1)

    @torch.no_grad()
    def infer(self, memory: torch.Tensor, pad_mask: torch.Tensor, limits: torch.Tensor,
              stop_threshold: StopThreshold, noise: UtteranceNoise | None = None) -> tuple[torch.Tensor, ...]:
        """Free-running decoding; return (mel (B, M, F), gate (B, S), att (B, S, N), out_lens (B,), hit_max (B,)).

        ``limits`` (B,) long: each utterance's most decoder steps; one that reaches its own
        limit without stopping ends there (``hit_max``), whatever the others still do.
        ``stop_threshold`` is a probability, or a function of the step giving one per
        utterance (B,). An utterance stops at the first step whose sigmoid(gate) exceeds it.
        ``noise``: the prenet's dropout drawn per utterance (see ``UtteranceNoise``).
        """
        batch = memory.shape[0]
        processed = self.attention.memory(memory)
        location_kernel = self.attention.location_kernel()
        state = self._initial_state(memory)
        frame = memory.new_zeros(batch, N_MELS)
        limits = limits.to(memory.device)
        out_lens = limits.clone()
        stopped = torch.zeros(batch, dtype=torch.bool, device=memory.device)
        frames: list[torch.Tensor] = []
        gates: list[torch.Tensor] = []
        alignments: list[torch.Tensor] = []
        for step in range(int(limits.max())):
            hidden, weights = self._step(self.prenet(frame, noise), state, memory, processed, pad_mask,
                                         location_kernel, (self.attention_rnn, self.decoder_rnn))
            out, gate = self._project(hidden)
            frames.append(out)
            gates.append(gate)
            alignments.append(weights)
            frame = out.view(batch, self.r, N_MELS)[:, -1]
            threshold = stop_threshold(step) if callable(stop_threshold) else stop_threshold
            stops = (torch.sigmoid(gate.float()) > threshold) & ~stopped & (step < limits)
            out_lens = torch.where(stops, torch.full_like(out_lens, step + 1), out_lens)
            stopped |= stops
            if bool((stopped | (limits <= step + 1)).all()):
                break
        steps = len(frames)
        mel = torch.stack(frames, 1).view(batch, steps * self.r, N_MELS).transpose(1, 2)
        return mel, torch.stack(gates, 1), torch.stack(alignments, 1), out_lens, ~stopped


class Tacotron2(AcousticModel):
    """Text (B, N) -> log-mel (B, 80, F), stop gate (B, S) and attention (B, S, N)."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        m = cfg.model
        self.reduction_factor = m.reduction_factor
        self.max_decoder_steps = cfg.max_decoder_steps
        self.text_frontend = m.text_frontend
        n_symbols = len(symbols(m.text_frontend))
        self.embedding = nn.Embedding(n_symbols, m.symbols_embedding_dim)
        bound = (6.0 / (n_symbols + m.symbols_embedding_dim)) ** 0.5  # Xavier, as NVIDIA/tacotron2
        self.embedding.weight.data.uniform_(-bound, bound)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.postnet = Postnet(cfg)

    def parameter_roles(self) -> dict[str, str]:
        """Return {"embedding.weight": TEXT_EMBEDDING}: its rows are the symbol set's."""
        return {"embedding.weight": TEXT_EMBEDDING}

    def _encode(self, text: torch.Tensor, text_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (memory (B, N, E), pad_mask (B, N) True on padding)."""
        memory = self.encoder(self.embedding(text).transpose(1, 2), text_lens)
        return memory, ~length_mask(text_lens, text.shape[1])

    def forward(self, batch: Batch, teacher_forcing: float = 1.0) -> ModelOutputs:
        """Teacher-forced (or scheduled-sampling) pass over ``batch`` (its mels have F a multiple of r)."""
        memory, pad_mask = self._encode(batch.text, batch.text_lens)
        mel, gate, att = self.decoder(memory, pad_mask, batch.mels, teacher_forcing)
        return ModelOutputs(mel, mel + self.postnet(mel), gate, att)

    @torch.no_grad()
    def infer(self, text: torch.Tensor, text_lens: torch.Tensor, max_decoder_steps: int | torch.Tensor | None = None,
              stop_threshold: StopThreshold = 0.5, seeds: Sequence[int] | None = None) -> Inference:
        """Free-running synthesis; the mels are zero after each utterance's stop (use ``out_lens``).

        Zeroing before the postnet, whose convolutions reach a few frames across the stop, makes
        an utterance's mel the same in any batch as alone (the frames another utterance keeps
        the loop decoding would otherwise leak into its last frames).
        """
        memory, pad_mask = self._encode(text, text_lens)
        noise = UtteranceNoise(seeds) if seeds is not None else None
        limit = max_decoder_steps if max_decoder_steps is not None else self.max_decoder_steps
        limits = torch.as_tensor(limit, dtype=torch.long).expand(text.shape[0]).clone()
        mel, gate, att, out_lens, hit_max = self.decoder.infer(memory, pad_mask, limits, stop_threshold, noise)
        mel = mel * length_mask(out_lens * self.reduction_factor, mel.shape[2])[:, None, :].to(mel.dtype)
        return Inference(mel, mel + self.postnet(mel), gate, att, out_lens, hit_max)
