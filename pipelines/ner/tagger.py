"""The NerDL-style tagger in PyTorch (training only): char-CNN + word embeddings -> BiLSTM -> CRF.

:class:`TaggerNet` is the part exported to ONNX (char-CNN, BiLSTM, emission scores); the CRF
transitions are plain numbers kept in ner.json, and inference decodes them in NumPy
(:func:`pipelines.ner.model.viterbi`). The network gives each real token the same scores whatever the
batch it is in: characters past a token's end and tokens past a sentence's end are masked, and the
backward LSTM reads each sentence reversed within its own length, never the padding.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from pipelines.ner.tags import allowed_transitions

_FORBIDDEN = -1e4


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x`` (B, T, H) over its first ``lengths[b]`` steps; padding stays put."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    lens = lengths.unsqueeze(1)
    index = torch.where(steps < lens, lens - 1 - steps, steps)
    return torch.gather(x, 1, index.unsqueeze(2).expand(-1, -1, x.shape[2]))


class CharCNN(nn.Module):
    def __init__(self, n_chars: int, char_dim: int, filters: int, window: int):
        super().__init__()
        self.embedding = nn.Embedding(n_chars, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, filters, window, padding=window // 2)

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        b, t, c = char_ids.shape
        flat = char_ids.reshape(b * t, c)
        h = self.conv(self.embedding(flat).transpose(1, 2))  # (b*t, filters, c')
        h = h[:, :, :c]  # even windows pad one extra position
        real = (flat > 0).unsqueeze(1)
        h = torch.where(real, h, torch.full_like(h, _FORBIDDEN)).max(dim=2).values
        has_chars = real.any(dim=2)  # padding tokens: zeros, not -1e4
        h = torch.where(has_chars, h, torch.zeros_like(h))
        return h.reshape(b, t, -1)


class TaggerNet(nn.Module):
    """(embeddings (B,T,D) float, char_ids (B,T,C) int64, lengths (B,) int64) -> emissions (B,T,K)."""

    def __init__(self, emb_dim: int, n_chars: int, n_tags: int, *, char_dim: int = 25, char_filters: int = 30,
                 char_window: int = 3, lstm_hidden: int = 100, dropout: float = 0.5):
        super().__init__()
        self.chars = CharCNN(n_chars, char_dim, char_filters, char_window)
        self.dropout = nn.Dropout(dropout)
        size = emb_dim + char_filters
        self.forward_lstm = nn.LSTM(size, lstm_hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(size, lstm_hidden, batch_first=True)
        self.emissions = nn.Linear(2 * lstm_hidden, n_tags)

    def forward(self, embeddings: torch.Tensor, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(torch.cat([embeddings, self.chars(char_ids)], dim=2))
        fwd = self.forward_lstm(x)[0]
        bwd = reverse_within_length(self.backward_lstm(reverse_within_length(x, lengths))[0], lengths)
        return self.emissions(self.dropout(torch.cat([fwd, bwd], dim=2)))


class CRF(nn.Module):
    """Linear-chain CRF with IOB2 constraints (``I-X`` only after ``B-X``/``I-X``)."""

    def __init__(self, tags: list[str]):
        super().__init__()
        k = len(tags)
        self.transitions = nn.Parameter(torch.zeros(k, k))
        self.start = nn.Parameter(torch.zeros(k))
        self.end = nn.Parameter(torch.zeros(k))
        allowed, allowed_start = allowed_transitions(tags)
        self.register_buffer("mask", torch.tensor(allowed))
        self.register_buffer("start_mask", torch.tensor(allowed_start))

    def constrained(self):
        t = torch.where(self.mask, self.transitions, torch.full_like(self.transitions, _FORBIDDEN))
        s = torch.where(self.start_mask, self.start, torch.full_like(self.start, _FORBIDDEN))
        return t, s, self.end

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of the gold ``tags`` (B,T) over the real steps (``mask``)."""
        trans, start, end = self.constrained()
        b, t, _ = emissions.shape
        maskf = mask.to(emissions.dtype)
        rows = torch.arange(b, device=emissions.device)
        # gold path score
        gold = (emissions.gather(2, tags.unsqueeze(2)).squeeze(2) * maskf).sum(1) + start[tags[:, 0]]
        if t > 1:
            gold = gold + (trans[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(1)
        gold = gold + end[tags[rows, mask.sum(1) - 1]]
        # partition function
        alpha = start.unsqueeze(0) + emissions[:, 0]
        for i in range(1, t):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, i]
            alpha = torch.where(mask[:, i : i + 1], nxt, alpha)
        log_z = torch.logsumexp(alpha + end.unsqueeze(0), dim=1)
        return (log_z - gold).mean()


class NerTagger(nn.Module):
    def __init__(self, tags: list[str], emb_dim: int, n_chars: int, **hyper):
        super().__init__()
        self.net = TaggerNet(emb_dim, n_chars, len(tags), **hyper)
        self.crf = CRF(tags)

    def loss(self, embeddings, char_ids, lengths, tags, mask):
        return self.crf.nll(self.net(embeddings, char_ids, lengths), tags, mask)

    def crf_numbers(self) -> tuple[list[list[float]], list[float], list[float]]:
        """The learned (unconstrained) transitions for ner.json; constraints are re-applied at load."""
        return (self.crf.transitions.detach().double().tolist(), self.crf.start.detach().double().tolist(),
                self.crf.end.detach().double().tolist())


def export_onnx(net: TaggerNet, path, emb_dim: int, opset: int = 17) -> None:
    """Write ``net`` (eval mode) as ONNX with dynamic batch, sentence and word lengths."""
    net = net.eval()
    example = (torch.zeros(2, 3, emb_dim), torch.ones(2, 3, 4, dtype=torch.int64),
               torch.tensor([3, 2], dtype=torch.int64))
    dims = {"embeddings": {0: "batch", 1: "tokens"}, "char_ids": {0: "batch", 1: "tokens", 2: "chars"},
            "lengths": {0: "batch"}, "emissions": {0: "batch", 1: "tokens"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript exporter needs no onnxscript; the graph is small and static in shape.
        torch.onnx.export(net, example, str(path), input_names=["embeddings", "char_ids", "lengths"],
                          output_names=["emissions"], dynamic_axes=dims, opset_version=opset, dynamo=False)
