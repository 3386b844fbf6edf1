"""Entity-level precision / recall / F1 with seqeval's (conlleval's) conventions.

An entity counts as found only when its type, first and last token all match. Per label, and the micro
average over all entities (seqeval's ``classification_report`` default mode).
"""

from __future__ import annotations

from collections import Counter

from pipelines.ner.tags import entities


def _prf(tp: int, n_pred: int, n_true: int) -> dict:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": n_true}


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """``{"labels": {TYPE: {precision, recall, f1, support}}, "micro": {...}, "macro": {...}, ...}``."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    tp, n_pred, n_true = Counter(), Counter(), Counter()
    correct_tokens = total_tokens = 0
    for g, p in zip(gold, predicted):
        if len(g) != len(p):
            raise ValueError(f"sentence with {len(g)} gold tags but {len(p)} predicted")
        ge, pe = set(entities(g)), set(entities(p))
        for kind, _, _ in ge:
            n_true[kind] += 1
        for kind, _, _ in pe:
            n_pred[kind] += 1
        for kind, _, _ in ge & pe:
            tp[kind] += 1
        correct_tokens += sum(a == b for a, b in zip(g, p))
        total_tokens += len(g)
    labels = {k: _prf(tp[k], n_pred[k], n_true[k]) for k in sorted(set(n_true) | set(n_pred))}
    micro = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_true.values()))
    macro = {m: round(sum(v[m] for v in labels.values()) / len(labels), 4) if labels else 0.0
             for m in ("precision", "recall", "f1")}
    macro["support"] = micro["support"]
    return {"labels": labels, "micro": micro, "macro": macro,
            "token_accuracy": round(correct_tokens / total_tokens, 4) if total_tokens else 0.0,
            "sentences": len(gold), "tokens": total_tokens}
