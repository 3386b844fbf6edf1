"""Train a NER model (NerDLApproach's job, natively): CoNLL -> BERT embeddings -> tagger -> NER_DIR.

No Spark: the CoNLL sentences are embedded directly with :class:`pipelines.model.embed.TokenEmbedder` on the
model bundle (the same code the BertEmbeddings stage runs, with the same settings), so the tagger sees
at training time exactly the vectors it will see in the pipeline. The embeddings are computed once and
kept fixed, as in Spark NLP. torch is imported only here (inside :func:`train_ner`) and in
:mod:`pipelines.ner.tagger`; the demo NER model trains without it (:mod:`pipelines.ner.linear`, which
reuses this module's data helpers).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.errors import CorpusNlpError
from pipelines.ner.conll import ConllData, Sentence, read_conll
from pipelines.ner.metrics import entity_scores
from pipelines.ner.model import (ALLOWED_FILES, MANIFEST, METRICS_FILE, ONNX_FILE, NerManifest, NerModel,
                                 NerModelError, viterbi, write_manifest)
from pipelines.ner.tags import sorted_tag_set, split_tag
from pipelines.text.sentences import Span
from pipelines.text.tokens import TokenizerRules


@dataclass
class NerTrainResult:
    path: Path
    model: NerModel
    metrics: dict
    seconds: float
    history: list[dict] = field(default_factory=list)

    @property
    def f1(self) -> float:
        return self.metrics["dev"]["micro"]["f1"]


# --- data -----------------------------------------------------------------------------------------
def retokenize(sentence: Sentence, rules: TokenizerRules) -> Sentence:
    """Split CoNLL tokens the way the pipeline's Tokenizer would ("U.S." -> "U.S", "."; "北京" -> "北", "京").

    The first piece keeps the tag, later pieces of an entity get its ``I-`` tag, so the tagger trains
    on the tokens it will meet in the pipeline.
    """
    tokens, tags = [], []
    for tok, tag in zip(sentence.tokens, sentence.tags):
        pieces = [s.text(tok) for s in rules.tokenize(tok, Span(0, len(tok) - 1))] or [tok]
        kind = split_tag(tag)[1]
        for i, piece in enumerate(pieces):
            tokens.append(piece)
            tags.append(tag if i == 0 or kind is None else f"I-{kind}")
    return Sentence(tuple(tokens), tuple(tags), sentence.line)


@dataclass
class _Encoded:
    vectors: list[np.ndarray]
    tokens: list[tuple[str, ...]]
    tags: list[np.ndarray]
    gold: list[list[str]]


def embed_sentences(embedder, sentences: list[Sentence], tag_index: dict[str, int], log, label: str) -> _Encoded:
    vectors: list[np.ndarray] = []
    step = 512
    started = time.time()
    for b in range(0, len(sentences), step):
        vectors += [e.vectors for e in embedder.embed([list(s.tokens) for s in sentences[b : b + step]])]
    log(f"  embedded {len(sentences)} {label} sentences ({sum(len(s.tokens) for s in sentences)} tokens) "
        f"in {time.time() - started:.1f}s")
    for s, v in zip(sentences, vectors):
        assert len(v) == len(s.tokens), "the embedder must give every token exactly one vector"
    return _Encoded(vectors, [s.tokens for s in sentences],
                    [np.asarray([tag_index.get(t, 0) for t in s.tags], dtype=np.int64) for s in sentences],
                    [list(s.tags) for s in sentences])


def char_vocabulary(sentences: list[Sentence], min_count: int) -> list[str]:
    counts = Counter(ch for s in sentences for t in s.tokens for ch in t)
    return sorted(ch for ch, n in counts.items() if n >= min_count)


def char_matrix(tokens_per_sentence, char_ids: dict[str, int], max_chars: int, longest: int) -> np.ndarray:
    width = max((min(len(t), max_chars) for toks in tokens_per_sentence for t in toks), default=1)
    out = np.zeros((len(tokens_per_sentence), longest, max(1, width)), dtype=np.int64)
    for r, toks in enumerate(tokens_per_sentence):
        for i, t in enumerate(toks):
            for j, ch in enumerate(t[:max_chars]):
                out[r, i, j] = char_ids.get(ch, 1)
    return out


def _batches(lengths: list[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar-length sentences (less padding, still random)."""
    order = rng.permutation(len(lengths))
    pool = batch_size * 32
    batches = []
    for p in range(0, len(order), pool):
        chunk = sorted(order[p : p + pool], key=lambda i: lengths[i])
        batches += [np.asarray(chunk[b : b + batch_size]) for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


# --- training -------------------------------------------------------------------------------------
def require_torch() -> None:
    """The NerDL tagger trains with PyTorch, which only the torch extra installs (the demo NER model does not
    need it: pipelines.ner.linear): one line saying what to install, before any other work."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CorpusNlpError("train-ner needs PyTorch, which is not installed: pip install 'corpus-nlp[torch]' "
                             "(in a checkout: pip install -e '.[torch]'); annotating and the demo NER model do "
                             "not need it") from None


def train_ner(
    train_file,
    dev_file,
    bundle_path,
    out_dir,
    epochs: int = 20,
    *,
    test_file=None,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    lr_decay: float = 0.005,
    dropout: float = 0.5,
    lstm_hidden: int = 100,
    char_dim: int = 25,
    char_filters: int = 30,
    char_window: int = 3,
    max_chars: int = 32,
    min_char_count: int = 2,
    patience: int | None = None,
    dev_fraction: float = 0.1,
    seed: int = 0,
    retokenize_tokens: bool = True,
    tokenizer_rules: TokenizerRules | None = None,
    max_sentence_length: int = 128,
    embed_batch_size: int = 32,
    pooling: str = "first",
    threads: int = 0,
    torch_threads: int = 1,
    log: Callable[[str], None] | None = print,
) -> NerTrainResult:
    """Train on ``train_file`` (CoNLL), select the epoch with the best dev F1, write NER_DIR ``out_dir``.

    ``dev_file`` None: ``dev_fraction`` of the training sentences are held out. ``bundle_path``: the
    BertEmbeddings model bundle whose vectors the tagger learns from (its storage ref is recorded and
    checked by NerDLModel). The dev (and test) metrics in metrics.json are computed through the written
    tagger.onnx and the NumPy Viterbi decoder, i.e. the inference path.
    """
    require_torch()
    import torch

    from pipelines.ner.tagger import NerTagger, export_onnx

    log = log or (lambda _m: None)
    started = time.time()
    out = Path(out_dir)
    check_out_dir(out)
    threads = threads or max(1, os.cpu_count() or 1)
    # One thread by default: the network is small, and OpenMP workers spinning on a busy machine made
    # epochs 30x slower in our measurements.
    torch.set_num_threads(max(1, torch_threads))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    train_data = read_conll(train_file)
    log(train_data.summary())
    dev_data: ConllData | None = read_conll(dev_file) if dev_file else None
    if dev_data is not None:
        log(dev_data.summary())
    test_data = read_conll(test_file) if test_file else None
    train_sents = list(train_data.sentences)
    if dev_data is None:
        if len(train_sents) < 2:
            raise ValueError(f"{train_file}: too few sentences to hold out a dev set; give a dev file")
        order = rng.permutation(len(train_sents))
        n_dev = max(1, int(round(len(train_sents) * dev_fraction)))
        dev_sents = [train_sents[i] for i in order[:n_dev]]
        train_sents = [train_sents[i] for i in order[n_dev:]]
        log(f"no dev file: holding out {n_dev} of the training sentences")
    else:
        dev_sents = list(dev_data.sentences)
    test_sents = list(test_data.sentences) if test_data else []
    if retokenize_tokens:
        rules = tokenizer_rules or TokenizerRules()
        train_sents, dev_sents, test_sents = ([retokenize(s, rules) for s in part]
                                              for part in (train_sents, dev_sents, test_sents))

    data = embedded_data(train_sents, dev_sents, test_sents, bundle_path, min_char_count, log, threads=threads,
                         max_sentence_length=max_sentence_length, batch_size=embed_batch_size, pooling=pooling)
    tags, chars, char_ids, bundle = data.tags, data.chars, data.char_ids, data.bundle
    train, dev, test, dim = data.train, data.dev, data.test, data.dimension

    hyper = dict(char_dim=char_dim, char_filters=char_filters, char_window=char_window, lstm_hidden=lstm_hidden,
                 dropout=dropout)
    model = NerTagger(tags, dim, len(chars) + 2, **hyper)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)

    def tensors(data: _Encoded, idx) -> tuple:
        lengths = [len(data.tokens[i]) for i in idx]
        longest = max(lengths)
        emb = np.zeros((len(idx), longest, dim), dtype=np.float32)
        tag = np.zeros((len(idx), longest), dtype=np.int64)
        for r, i in enumerate(idx):
            emb[r, : lengths[r]] = data.vectors[i]
            tag[r, : lengths[r]] = data.tags[i]
        chars_m = char_matrix([data.tokens[i] for i in idx], char_ids, max_chars, longest)
        lens = torch.tensor(lengths, dtype=torch.int64)
        mask = torch.arange(longest).unsqueeze(0) < lens.unsqueeze(1)
        return torch.from_numpy(emb), torch.from_numpy(chars_m), lens, torch.from_numpy(tag), mask

    def emissions_of(data: _Encoded) -> list[np.ndarray]:
        model.eval()
        out: list[np.ndarray] = []
        with torch.no_grad():
            for b in range(0, len(data.tokens), 64):
                idx = list(range(b, min(b + 64, len(data.tokens))))
                emb, ch, lens, _, _ = tensors(data, idx)
                em = model.net(emb, ch, lens).numpy()
                out += [em[r, : lens[r]] for r in range(len(idx))]
        return out

    def decode(data: _Encoded, emissions: list[np.ndarray]) -> list[list[str]]:
        trans, start, end = (t.detach().double().numpy() for t in model.crf.constrained())
        return [[tags[k] for k in viterbi(em, trans, start, end)] for em in emissions]

    log(f"training {len(train.tokens)} sentences, {len(tags)} tags, {len(chars)} characters, "
        f"{sum(p.numel() for p in model.parameters())} parameters, {threads} threads")
    history: list[dict] = []
    best_f1, best_epoch, best_state = -1.0, 0, None
    lengths = [len(t) for t in train.tokens]
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate / (1 + lr_decay * (epoch - 1))
        model.train()
        total, n = 0.0, 0
        for idx in _batches(lengths, batch_size, rng):
            emb, ch, lens, tag, mask = tensors(train, idx)
            loss = model.loss(emb, ch, lens, tag, mask)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            total += loss.item() * len(idx)
            n += len(idx)
        f1 = entity_scores(dev.gold, decode(dev, emissions_of(dev)))["micro"]["f1"]
        history.append({"epoch": epoch, "loss": round(total / max(n, 1), 4), "dev_f1": f1,
                        "seconds": round(time.time() - t0, 2)})
        marker = ""
        if f1 >= best_f1:
            best_f1, best_epoch, best_state = f1, epoch, copy.deepcopy(model.state_dict())
            marker = " *"
        log(f"epoch {epoch:>3}/{epochs}  loss {total / max(n, 1):8.4f}  dev F1 {f1:.4f}  "
            f"({time.time() - t0:.1f}s){marker}")
        if patience and epoch - best_epoch >= patience:
            log(f"no dev improvement for {patience} epochs: stopping")
            break
    model.load_state_dict(best_state)
    model.eval()

    # --- write NER_DIR: tagger.onnx, metrics.json (measured through the ONNX path), ner.json last
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        (out / MANIFEST).unlink()  # a half-written directory must not look like a model
    export_onnx(model.net, out / ONNX_FILE, dim)
    transitions, start, end = model.crf_numbers()
    manifest = NerManifest(
        tags=tags, chars=chars, max_chars=max_chars, transitions=transitions, start_transitions=start,
        end_transitions=end, storage_ref=bundle.manifest.storage_ref, embeddings_dimension=dim,
        embeddings={"bundle_name": bundle.manifest.name, "bundle_kind": bundle.manifest.kind,
                    "max_sentence_length": max_sentence_length, "pooling": pooling,
                    "case_sensitive": bundle.manifest.case_sensitive},
        hyperparameters={**hyper, "max_chars": max_chars, "min_char_count": min_char_count, "epochs": epochs,
                         "batch_size": batch_size, "learning_rate": learning_rate, "lr_decay": lr_decay,
                         "patience": patience, "seed": seed, "optimizer": "adam", "crf": "IOB2-constrained"},
        training={"train_file": str(train_file), "dev_file": str(dev_file) if dev_file else None,
                  "test_file": str(test_file) if test_file else None, "train_sentences": len(train.tokens),
                  "dev_sentences": len(dev.tokens), "retokenized": retokenize_tokens,
                  "train_scheme": train_data.scheme, "best_epoch": best_epoch, "epochs_run": len(history)},
    )
    return write_checked_model(out, manifest, dev, test, emissions_of(dev), best_epoch, history, started, threads, log)


@dataclass
class EmbeddedData:
    """What both trainers start from: the tag set, the character vocabulary (ids from 2: 0 pads, 1 is unknown),
    the embeddings bundle, and the sentences embedded once with it (the embeddings stay fixed, as in Spark NLP)."""

    tags: list[str]
    chars: list[str]
    bundle: object
    dimension: int
    train: object
    dev: object
    test: object | None

    @property
    def char_ids(self) -> dict[str, int]:
        return {c: i + 2 for i, c in enumerate(self.chars)}


def embedded_data(train_sents, dev_sents, test_sents, bundle_path, min_char_count: int, log, *, threads: int,
                  max_sentence_length: int, batch_size: int, pooling: str) -> EmbeddedData:
    from pipelines.model.embed import TokenEmbedder
    from pipelines.model.bundle import ModelBundle

    tags = sorted_tag_set(t for s in train_sents for t in s.tags)
    unseen = sorted({t for s in dev_sents + test_sents for t in s.tags} - set(tags))
    if unseen:
        log(f"  warning: tags {unseen} occur in the evaluation data but never in training")
    tag_index = {t: i for i, t in enumerate(tags)}
    bundle = ModelBundle.load(bundle_path, verify=True)
    embedder = TokenEmbedder(bundle.create_session(intra_op_threads=threads), bundle.load_tokenizer(),
                             max_sentence_length=max_sentence_length, batch_size=batch_size, pooling=pooling)
    log(f"embeddings: {bundle.manifest.name} ({bundle.manifest.storage_ref}, {embedder.dimension} dims, "
        f"{bundle.manifest.kind})")
    embed = lambda sents, what: embed_sentences(embedder, sents, tag_index, log, what)  # noqa: E731
    return EmbeddedData(tags, char_vocabulary(train_sents, min_char_count), bundle, int(embedder.dimension),
                        embed(train_sents, "training"), embed(dev_sents, "dev"),
                        embed(test_sents, "test") if test_sents else None)


def write_checked_model(out: Path, manifest: NerManifest, dev, test, expected: list, best_epoch: int, history: list,
                        started: float, threads: int, log: Callable[[str], None]) -> NerTrainResult:
    """Finish an NER directory whose tagger.onnx is written: refuse it unless the graph gives the trained
    model's emissions on the dev sentences (``expected``, one array per sentence, within 1e-3), then write
    the metrics (measured through the graph: the inference path) and the manifest, and load it back."""
    onnx_model = NerModel(out, manifest)
    onnx_model._threads = threads
    dev_em = onnx_model.emissions([(list(t), v) for t, v in zip(dev.tokens, dev.vectors)], batch_size=8)
    worst = max((float(np.abs(a - b[: len(a)]).max()) for a, b in zip(dev_em, expected) if len(a)), default=0.0)
    if worst > 1e-3:
        raise NerModelError(f"the exported {ONNX_FILE} disagrees with the trained model (max |diff| {worst:.2e})")
    metrics = {
        "dev": evaluate(onnx_model, dev),
        **({"test": evaluate(onnx_model, test)} if test is not None else {}),
        "best_epoch": best_epoch,
        "history": history,
        "evaluated_with": f"{ONNX_FILE} + NumPy Viterbi (the inference path)",
        "conventions": "entity level, exact type and span match (seqeval/conlleval default mode)",
    }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    write_manifest(out, manifest.model_copy(update={"training": {**manifest.training,
                                                                  "seconds": round(time.time() - started, 1)}}),
                   [ONNX_FILE, METRICS_FILE])
    loaded = NerModel.load(out, verify=True, intra_op_threads=threads)
    seconds = time.time() - started
    m = metrics["dev"]
    log(f"best epoch {best_epoch}: dev entity P {m['micro']['precision']:.4f} R {m['micro']['recall']:.4f} "
        f"F1 {m['micro']['f1']:.4f}; " + ", ".join(f"{k} {v['f1']:.3f}" for k, v in m["labels"].items()))
    log(f"wrote {out} in {seconds:.1f}s")
    return NerTrainResult(out, loaded, metrics, seconds, history)


def evaluate(model: NerModel, data: _Encoded) -> dict:
    predictions = model.predict([(list(t), v) for t, v in zip(data.tokens, data.vectors)])
    return entity_scores(data.gold, [p.tags for p in predictions])


def check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise NerModelError(f"NER output {out} exists and is not a directory")
    if out.is_dir():
        foreign = [f.name for f in out.iterdir() if f.name not in ALLOWED_FILES]
        if foreign:
            raise NerModelError(f"NER output directory {out} holds files that are not an NER model's "
                                f"({', '.join(sorted(foreign)[:5])}): choose an empty or new directory")


__all__ = ["train_ner", "NerTrainResult", "retokenize"]


def train_from_config(config, log: Callable[[str], None] | None = print) -> NerTrainResult:
    """Run :func:`train_ner` as a :class:`pipelines.ner.config.TrainNerConfig` describes."""
    from pipelines.model.bundle import BundleError

    bundle = Path(config.model.bundle)
    if not (bundle / "manifest.json").exists():
        if not config.model.build_demo_if_missing:
            raise BundleError(f"model bundle {bundle} not found: build it with `corpus-nlp prepare-model "
                              f"--from-dir CHECKPOINT --out {bundle}` (or `corpus-nlp demo-model --out {bundle}`)")
        from pipelines.model.demo import build_demo_model

        (log or print)(f"Model bundle {bundle} is missing: building the demo model (random weights) there...")
        build_demo_model(bundle)
    t, e = config.training, config.embeddings
    return train_ner(
        config.train, config.dev, bundle, config.out, t.epochs, test_file=config.test, batch_size=t.batch_size,
        learning_rate=t.learning_rate, lr_decay=t.lr_decay, dropout=t.dropout, lstm_hidden=t.lstm_hidden,
        char_dim=t.char_dim, char_filters=t.char_filters, char_window=t.char_window, max_chars=t.max_chars,
        min_char_count=t.min_char_count, patience=t.patience, dev_fraction=t.dev_fraction, seed=t.seed,
        retokenize_tokens=config.retokenize, max_sentence_length=e.max_sentence_length,
        embed_batch_size=e.batch_size, pooling=e.pooling, threads=e.threads, torch_threads=t.torch_threads,
        log=log,
    )
