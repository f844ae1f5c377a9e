"""`instrec evaluate MODEL DATA --out DIR`: scores, per-class tables and figures for a model.

Every item of the store is cut into 1 s windows with 50 % overlap (`instrec.audio.windows`),
the windows' logits are averaged per item (the paper's protocol for whole IRMAS test
files; a 1 s clip is one window), and the sigmoid of the average is the item's
probability per class. F1 needs a threshold on those probabilities: it comes from the
model file (picked on validation at training time), a sweep on a validation split, a
sweep on the evaluated split itself (the paper's protocol, optimistic) or a given value,
and the report says which. Single-label stores also get the arg-max accuracy, a
confusion matrix and a t-SNE of the penultimate embeddings.

`protocol` names the whole recipe (PROTOCOLS): "instrec" is the above; "paper" is the
paper's reading (mean of window logits, threshold swept on the evaluated data) with the
authors' code where the paper is silent (their grid 0.00-0.78 by 0.02 with >=, 1 s
windows with a 0.5 s hop and the last partial window dropped); "authors" also averages
window sigmoids instead of logits, as their evaluator.py does.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from instrec import __version__, report
from instrec.atomic import (
    check_replaceable,
    claim,
    remove_leftovers,
    replace_folder,
    temp_folder,
    writing,
)
from instrec.audio import SAMPLE_RATE, window_starts, windows
from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.metrics import (
    PAPER_GRID,
    PAPER_GRID_TEXT,
    THRESHOLD_GRID,
    THRESHOLD_GRID_TEXT,
    multilabel_metrics,
    single_label_metrics,
    threshold_sweep,
)
from instrec.model.io import ModelFile, load_model_file

__all__ = ["averaged_outputs", "evaluate_model", "multilabel_metrics"]

WINDOW_SECONDS = 1.0  # s: the model's input length
WINDOW_OVERLAP = 0.5  # share of a window that the next one repeats
THRESHOLD_SOURCES = ("validation", "test", "model")
SPLIT_CHOICES = ("auto", "train", "valid", "test", "all")
METRICS = "metrics.json"  # written last: its presence marks a finished evaluation folder


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How windows become an item's scores and how F1's threshold is found."""

    average: str  # "logits": sigmoid of the mean logit; "probabilities": mean of sigmoids
    drop_tail: bool  # leave out the last partial window instead of one flush with the end
    grid: np.ndarray  # thresholds swept
    grid_text: str
    inclusive: bool  # score >= threshold (the authors' code) instead of > (the paper's text)
    threshold_from: str | None  # forced threshold source; None: --threshold-from decides
    about: str


PROTOCOLS: dict[str, Protocol] = {
    "instrec": Protocol(
        "logits", False, THRESHOLD_GRID, THRESHOLD_GRID_TEXT, False, None,
        "mean of window logits over 1 s windows (50 % overlap, the last one flush with the "
        "end); the threshold as --threshold-from says",
    ),
    "paper": Protocol(
        "logits", True, PAPER_GRID, PAPER_GRID_TEXT, True, "test",
        "the paper's reading: mean of window logits, threshold swept on the evaluated data; "
        "where the paper is silent the authors' code: its grid and >=, 1 s windows with a "
        "0.5 s hop, the last partial window dropped",
    ),
    "authors": Protocol(
        "probabilities", True, PAPER_GRID, PAPER_GRID_TEXT, True, "test",
        "the authors' evaluator.py: mean of window sigmoids, their grid and >=, threshold "
        "swept on the evaluated data, the last partial window dropped",
    ),
}  # fmt: skip


def averaged_outputs(
    fn: Callable[[torch.Tensor], torch.Tensor],
    store: ClipStore,
    indices: np.ndarray,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    desc: str = "windows",
    drop_tail: bool = False,
) -> np.ndarray:
    """(len(indices), D) mean of `fn` over each item's 1 s, 50 %-overlap windows (the
    tail rule of instrec.audio.window_starts; `drop_tail` leaves a partial one out).

    `fn` maps (batch, samples) float32 windows to (batch, D) (the model for logits,
    `model.embed` for embeddings); windows of several items share a batch of up to
    `batch_size` windows, run under torch.inference_mode with a progress bar.
    """
    window = round(WINDOW_SECONDS * store.sample_rate)
    hop = round(window * (1 - WINDOW_OVERLAP))
    lengths = np.diff(store.offsets)[indices]
    total = int(sum(window_starts(int(n), window, hop, drop_tail).size for n in lengths))
    sums: np.ndarray | None = None
    counts = np.zeros(len(indices), dtype=np.int64)
    pending: list[np.ndarray] = []
    owners: list[np.ndarray] = []

    def run_pending() -> None:
        nonlocal sums
        batch = torch.from_numpy(np.concatenate(pending)).to(device)  # (windows, samples)
        output = fn(batch).float().cpu().numpy()  # (windows, D)
        owner = np.concatenate(owners)
        if sums is None:
            sums = np.zeros((len(indices), output.shape[1]), dtype=np.float64)
        np.add.at(sums, owner, output)
        np.add.at(counts, owner, 1)
        progress.update(len(owner))
        pending.clear()
        owners.clear()

    with torch.inference_mode(), tqdm(total=total, desc=desc, unit="win") as progress:
        queued = 0
        for row, item in enumerate(indices):
            audio = store.audio(int(item))
            cut = windows(audio, store.sample_rate, WINDOW_SECONDS, WINDOW_OVERLAP, drop_tail)
            for start in range(0, len(cut), batch_size):  # (windows, samples) pieces
                piece = cut[start : start + batch_size]
                if queued + len(piece) > batch_size:
                    run_pending()
                    queued = 0
                pending.append(piece)
                owners.append(np.full(len(piece), row))
                queued += len(piece)
        if pending:
            run_pending()
    if sums is None:
        raise InstrecError(f"{store.path}: no items to evaluate")
    return (sums / counts[:, None]).astype(np.float32)


def _class_columns(model_classes: tuple[str, ...], store: ClipStore, model_path: Path) -> list[int]:
    """Model output column of each store class, in the store's order."""
    missing = [code for code in store.classes if code not in model_classes]
    if missing:
        raise InstrecError(
            f"{model_path}: the model has no output for {', '.join(missing[:8])} "
            f"of store {store.path} (model classes: {', '.join(model_classes[:12])})"
        )
    return [model_classes.index(code) for code in store.classes]


def _split_indices(store: ClipStore, split: str) -> tuple[str, np.ndarray]:
    """Resolve `split` ("auto": test if the store has test items, else valid)."""
    if split == "all":
        return split, np.arange(len(store), dtype=np.int64)
    if split == "auto":
        split = "test" if (store.splits == "test").any() else "valid"
    indices = store.indices(split)
    if indices.size == 0:
        raise InstrecError(f"{store.path}: no items in split {split!r}")
    return split, indices


def _probabilities(
    model_file: ModelFile,
    model_path: Path,
    store: ClipStore,
    indices: np.ndarray,
    batch_size: int,
    device: str,
    desc: str,
    protocol: Protocol = PROTOCOLS["instrec"],
) -> np.ndarray:
    """(items, store classes) probabilities: the sigmoid of the window-averaged logits, or
    the window-averaged sigmoids (protocol.average)."""
    if store.sample_rate != SAMPLE_RATE:
        raise InstrecError(f"{store.path}: store is at {store.sample_rate} Hz, not {SAMPLE_RATE}")
    columns = _class_columns(model_file.classes, store, model_path)
    model = model_file.model
    if protocol.average == "probabilities":
        mean = averaged_outputs(
            lambda x: torch.sigmoid(model(x).float()), store, indices, batch_size, device, desc,
            protocol.drop_tail,
        )  # fmt: skip
        return mean[:, columns].astype(np.float64)
    logits = averaged_outputs(model, store, indices, batch_size, device, desc, protocol.drop_tail)
    return 1.0 / (1.0 + np.exp(-logits[:, columns].astype(np.float64)))


def _threshold_source(threshold_from: str | float) -> str | float:
    """ "model", "test", "validation" or the given probability, checked before any work."""
    if threshold_from in THRESHOLD_SOURCES:
        return str(threshold_from)
    try:
        value = float(threshold_from)
    except ValueError:
        raise InstrecError(
            f"--threshold-from {threshold_from!r}: expected validation, test, model or a number"
        ) from None
    if not 0.0 <= value < 1.0:
        raise InstrecError(f"--threshold-from {value}: a probability threshold is in [0, 1)")
    return value


def _choose_threshold(
    source: str | float,
    model_file: ModelFile,
    model_path: Path,
    evaluated: tuple[np.ndarray, np.ndarray],
    validation_store: ClipStore,
    batch_size: int,
    device: str,
    protocol: Protocol,
) -> dict[str, Any]:
    """The threshold to binarise with and a record of how it was chosen."""
    if isinstance(source, float):
        return {"from": "value", "threshold": source, "how": "given on the command line"}
    if source == "model":
        return {
            "from": "model",
            "threshold": float(model_file.threshold),
            "how": f"stored in the model file {model_path}",
        }
    if source == "test":
        sweep = threshold_sweep(*evaluated, protocol.grid, protocol.inclusive)
        return {
            "from": "test",
            "threshold": sweep["best_threshold"],
            "how": "maximises micro F1 on the evaluated split itself (the paper's protocol; "
            "optimistic)",
        }
    indices = validation_store.indices("valid")
    probs = _probabilities(
        model_file, model_path, validation_store, indices, batch_size, device,
        "validation windows", protocol,
    )  # fmt: skip
    sweep = threshold_sweep(
        np.asarray(validation_store.targets[indices]), probs, protocol.grid, protocol.inclusive
    )
    return {
        "from": "validation",
        "threshold": sweep["best_threshold"],
        "how": f"maximises micro F1 on the 'valid' split of {validation_store.path} "
        f"({indices.size} items)",
        "validation_f1_micro": sweep["best_f1_micro"],
    }


def _single_label_analysis(
    model_file: ModelFile,
    store: ClipStore,
    indices: np.ndarray,
    probs: np.ndarray,
    tsne_points: int,
    batch_size: int,
    device: str,
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray] | None]:
    """Arg-max accuracy and confusion; t-SNE of up to `tsne_points` items' embeddings.

    Returns the metrics and the t-SNE map as ((points, 2) coordinates, (points,) class
    indices), None when there are too few items to map.
    """
    labels = np.asarray(store.targets[indices]).argmax(axis=1)
    result = single_label_metrics(labels, probs)
    count = min(tsne_points, indices.size)
    if count < 10:  # t-SNE of a handful of points says nothing
        return result, None
    chosen = np.sort(np.random.default_rng(0).choice(indices.size, size=count, replace=False))
    embeddings = averaged_outputs(
        model_file.model.embed, store, indices[chosen], batch_size, device, "embedding windows"
    )
    from sklearn.manifold import TSNE

    method = "exact" if count <= 500 else "barnes_hut"  # exact: faster for a few hundred
    tsne = TSNE(perplexity=min(30.0, (count - 1) / 3), init="pca", random_state=0, method=method)
    points = tsne.fit_transform(embeddings)
    result["tsne_items"] = int(count)
    return result, (points, labels[chosen])


def _open(store: str | Path | ClipStore) -> ClipStore:
    return store if isinstance(store, ClipStore) else ClipStore.open(store)


def _provenance(
    loaded: ModelFile,
    model_path: Path,
    store: ClipStore,
    split: str,
    indices: np.ndarray,
    protocol: Protocol,
) -> dict[str, Any]:
    """What was evaluated on what: the metrics.json keys data, model, version and time."""
    return {
        "data": {
            "store": str(store.path),
            "kind": store.kind,
            "split": split,
            "items": int(indices.size),
            "windows": f"{WINDOW_SECONDS:g} s, {100 * WINDOW_OVERLAP:g} % overlap, "
            + ("partial last window dropped, " if protocol.drop_tail else "")
            + f"{protocol.average} averaged",
        },
        "model": {
            "path": str(model_path),
            "classes": list(loaded.classes),
            "stored_threshold": float(loaded.threshold),
            "config": dataclasses.asdict(loaded.model.config),
            "meta": loaded.meta,
        },
        "instrec_version": __version__,
        "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def evaluate_model(
    model_file: str | Path,
    store: str | Path | ClipStore,
    out_dir: str | Path,
    threshold_from: str | float | None = None,
    split: str = "auto",
    validation_store: str | Path | ClipStore | None = None,
    batch_size: int = 128,
    device: str | None = None,
    tsne_points: int = 2000,
    force: bool = False,
    protocol: str = "instrec",
) -> dict[str, Any]:
    """Evaluate a saved model on a clip store; write metrics.json, report.md,
    predictions.csv and figures into `out_dir`; return the metrics.

    `threshold_from` is "model" (None: the default, unless the protocol sweeps on the
    evaluated split), "validation" (sweep on `validation_store`'s valid split, default:
    `store`), "test" (sweep on the evaluated split) or a number. `protocol`: a PROTOCOLS
    name. `out_dir` is
    claimed first (a second evaluation into it fails at once); an existing evaluation
    there is replaced only with `force`, and anything else never.
    """
    out_dir = Path(out_dir)
    chosen_protocol = _protocol(protocol, threshold_from)
    with claim(out_dir):
        remove_leftovers(out_dir)
        check_replaceable(out_dir, METRICS, "an evaluation", force, _is_metrics)
        return _evaluate(
            Path(model_file),
            store,
            out_dir,
            protocol=chosen_protocol,
            threshold_from=chosen_protocol.threshold_from or threshold_from or "model",
            split=split,
            validation_store=validation_store,
            batch_size=batch_size,
            device=device,
            tsne_points=tsne_points,
        )


def _protocol(name: str, threshold_from: str | float | None) -> Protocol:
    """The named protocol, checked against an explicit threshold source."""
    if name not in PROTOCOLS:
        raise InstrecError(f"unknown protocol {name!r} (known: {', '.join(PROTOCOLS)})")
    chosen = PROTOCOLS[name]
    forced = chosen.threshold_from
    if forced is not None and threshold_from is not None and threshold_from != forced:
        raise InstrecError(
            f"--protocol {name} sweeps the threshold on the evaluated data; "
            f"drop --threshold-from {threshold_from}"
        )
    return dataclasses.replace(chosen, about=f"{name}: {chosen.about}")


def _is_metrics(metrics: dict[str, Any]) -> bool:
    """Whether a parsed metrics.json was written by `instrec evaluate`."""
    return "instrec_version" in metrics and "threshold_selection" in metrics


def _evaluate(
    model_path: Path,
    store: str | Path | ClipStore,
    out_dir: Path,
    *,
    protocol: Protocol,
    threshold_from: str | float,
    split: str,
    validation_store: str | Path | ClipStore | None,
    batch_size: int,
    device: str | None,
    tsne_points: int,
) -> dict[str, Any]:
    """evaluate_model once `out_dir` is claimed and checked."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = _open(store)
    validation = data if validation_store is None else _open(validation_store)
    source = _threshold_source(threshold_from)
    if source == "validation" and validation.indices("valid").size == 0:
        raise InstrecError(f"{validation.path}: no 'valid' split to pick a threshold on")
    split, indices = _split_indices(data, split)
    loaded = load_model_file(model_path, map_location=device)
    loaded.model.to(device).eval()

    probs = _probabilities(
        loaded, model_path, data, indices, batch_size, device, "windows", protocol
    )
    truth = np.asarray(data.targets[indices])
    chosen = _choose_threshold(
        source, loaded, model_path, (truth, probs), validation, batch_size, device, protocol
    )
    metrics = multilabel_metrics(
        truth, probs, chosen["threshold"], data.classes, protocol.inclusive
    )
    metrics["protocol"] = protocol.about
    metrics["threshold_from"] = chosen.pop("from")
    metrics["threshold_selection"] = chosen
    sweep = threshold_sweep(truth, probs, protocol.grid, protocol.inclusive)
    metrics["sweep"] = {**sweep, "grid_text": protocol.grid_text}
    metrics.update(_provenance(loaded, model_path, data, split, indices, protocol))
    tsne = None
    if (truth.sum(axis=1) == 1).all():  # one label per item: the single-predominant analysis
        metrics["single_label"], tsne = _single_label_analysis(
            loaded, data, indices, probs, tsne_points, batch_size, device
        )
    _write_outputs(out_dir, metrics, data, indices, truth, probs, tsne)
    return metrics


def _predictions_csv(
    store: ClipStore, indices: np.ndarray, truth: np.ndarray, probs: np.ndarray, threshold: float
) -> str:
    """One row per item: source, split, true and predicted codes (';'), top class, p_<code>."""
    codes = np.array(store.classes)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["source", "split", "labels", "predicted", "top", *(f"p_{c}" for c in codes)])
    for row, item in enumerate(indices):
        writer.writerow(
            [
                store.sources[item],
                store.splits[item],
                ";".join(codes[truth[row] > 0.5]),
                ";".join(codes[probs[row] > threshold]),
                codes[probs[row].argmax()],
                *(f"{p:.5f}" for p in probs[row]),
            ]
        )
    return buffer.getvalue()


def _write_outputs(
    out_dir: Path,
    metrics: dict[str, Any],
    store: ClipStore,
    indices: np.ndarray,
    truth: np.ndarray,
    probs: np.ndarray,
    tsne: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Write everything into a temporary sibling folder, then swap it in for `out_dir`;
    a failure (disk full, ...) leaves `out_dir` as it was and no temporary folder."""
    tmp = temp_folder(out_dir)
    try:
        with writing(out_dir):
            _write_files(tmp, metrics, store, indices, truth, probs, tsne)
            replace_folder(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_files(
    folder: Path,
    metrics: dict[str, Any],
    store: ClipStore,
    indices: np.ndarray,
    truth: np.ndarray,
    probs: np.ndarray,
    tsne: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """The figures, predictions.csv, report.md and, last, metrics.json into `folder`."""
    f1 = {code: scores["f1"] for code, scores in metrics["per_class"].items()}
    report.per_class_f1_chart(
        {"F1": f1},
        folder / "per_class_f1.png",
        title=f"F1 per class at threshold {metrics['threshold']:.2f}",
    )
    report.threshold_sweep_plot(
        metrics["sweep"], folder / "threshold_sweep.png", chosen=metrics["threshold"]
    )
    if "single_label" in metrics:
        report.confusion_matrix_plot(
            metrics["single_label"]["confusion"], store.classes, folder / "confusion.png"
        )
    if tsne is not None:
        report.tsne_plot(tsne[0], tsne[1], store.classes, folder / "tsne.png")
    texts = {
        "predictions.csv": _predictions_csv(store, indices, truth, probs, metrics["threshold"]),
        "report.md": _report_markdown(metrics, tsne is not None),
        METRICS: json.dumps(metrics, indent=2, default=str) + "\n",
    }
    for name, text in texts.items():  # the folder is swapped in whole: no per-file renames
        (folder / name).write_text(text, encoding="utf-8")


def _report_markdown(metrics: dict[str, Any], has_tsne: bool) -> str:
    """report.md: what was evaluated, how the threshold was chosen, every score."""
    data, sweep, selection = metrics["data"], metrics["sweep"], metrics["threshold_selection"]
    lines = [
        f"# Evaluation of `{metrics['model']['path']}`",
        "",
        f"- data: `{data['store']}` ({data['kind']}), split `{data['split']}`, "
        f"{data['items']} items; windows {data['windows']} per item",
        f"- threshold **{metrics['threshold']:.2f}** on the sigmoid probability, from "
        f"`{metrics['threshold_from']}`: {selection['how']}",
        f"- protocol {metrics['protocol']}",
        "",
        "## Scores",
        "",
        report.markdown_table(
            ["metric", "value"],
            [
                ["F1-micro", metrics["f1_micro"]],
                ["F1-macro (mean of per-class F1, scikit-learn)", metrics["f1_macro"]],
                [
                    "F1-macro, paper eq. 11 (harmonic mean of macro P and R)",
                    metrics["f1_macro_eq11"],
                ],
                [
                    "precision micro / macro",
                    f"{metrics['precision_micro']:.3f} / {metrics['precision_macro']:.3f}",
                ],
                [
                    "recall micro / macro",
                    f"{metrics['recall_micro']:.3f} / {metrics['recall_macro']:.3f}",
                ],
                ["LRAP (threshold-free)", metrics["lrap"]],
            ],
        ),
        f"Threshold sweep on this split over {sweep['grid_text']}: best F1-micro "
        f"{sweep['best_f1_micro']:.3f} at {sweep['best_threshold']:.2f}; best F1-macro "
        f"{sweep['best_f1_macro']:.3f} at {sweep['best_macro_threshold']:.2f} "
        "(picking the threshold on the evaluated data itself is the paper's protocol, optimistic).",
        "",
        "![F1 vs threshold](threshold_sweep.png)",
        "",
        "## Per class",
        "",
        report.markdown_table(
            ["class", "name", "support", "precision", "recall", "F1"],
            [
                [code, report.class_label(code), s["support"], s["precision"], s["recall"], s["f1"]]
                for code, s in metrics["per_class"].items()
            ],
        ),
        "![F1 per class](per_class_f1.png)",
        "",
    ]
    absent = [code for code, scores in metrics["per_class"].items() if scores["support"] == 0]
    if absent:
        lines[-2:-2] = [
            f"No item of this split has {', '.join(absent)}: their scores are 0 and the macro "
            "averages include them (scikit-learn's zero_division=0).",
            "",
        ]
    if "single_label" in metrics:
        lines += [
            "## Single predominant instrument",
            "",
            f"Arg-max accuracy: **{100 * metrics['single_label']['accuracy']:.1f} %** "
            "(every item has exactly one label).",
            "",
            "![Confusion matrix (rows: truth)](confusion.png)",
            "",
        ]
        if has_tsne:
            lines += [
                f"![t-SNE of {metrics['single_label']['tsne_items']} embeddings](tsne.png)",
                "",
            ]
    lines.append(
        f"Per-item probabilities: `predictions.csv`. instrec {metrics['instrec_version']}."
    )
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of `instrec evaluate`."""
    parser.add_argument("model", type=Path, help="model file (RUN/model.pt from finetune)")
    parser.add_argument("data", type=Path, help="clip store from 'instrec prepare'")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        default=argparse.SUPPRESS,  # required: no default to print
        help="folder for metrics.json, report.md, predictions.csv, figures",
    )
    parser.add_argument(
        "--threshold-from",
        default=None,
        metavar="validation|test|model|VALUE",
        help="where the probability threshold comes from: 'model' (picked on validation "
        "when the model was trained; the default), 'validation' (sweep the valid split of "
        "--validation-data), 'test' (sweep the evaluated split: the paper's protocol, "
        "optimistic) or a number in [0, 1)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="instrec",
        help="instrec: mean window logits, every sample in a window, the threshold from "
        "--threshold-from; paper: the paper's reading (threshold swept on the evaluated data) "
        "with the authors' grid 0.00-0.78 and >=, last partial window dropped; authors: "
        "also the mean of window sigmoids, as their evaluator.py",
    )
    parser.add_argument(
        "--validation-data",
        type=Path,
        default=None,
        help="store whose 'valid' split picks the threshold with "
        "--threshold-from validation; None: DATA itself",
    )
    parser.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default="auto",
        help="which items to evaluate; auto: 'test' if DATA has any, else 'valid'",
    )
    parser.add_argument("--batch-size", type=int, default=128, help="1 s windows per forward pass")
    parser.add_argument(
        "--device", default=None, help="torch device; None: cuda when available, else cpu"
    )
    parser.add_argument(
        "--tsne-points",
        type=int,
        default=2000,
        help="items in the t-SNE map of single-label data (0: no t-SNE)",
    )
    parser.add_argument("--force", action="store_true", help="replace the results already in --out")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the headline scores."""
    if args.batch_size < 1:
        raise InstrecError(f"--batch-size must be at least 1, got {args.batch_size}")
    metrics = evaluate_model(
        args.model,
        args.data,
        args.out,
        threshold_from=args.threshold_from,
        split=args.split,
        validation_store=args.validation_data,
        batch_size=args.batch_size,
        device=args.device,
        tsne_points=args.tsne_points,
        force=args.force,
        protocol=args.protocol,
    )
    print(
        f"F1-micro {metrics['f1_micro']:.3f}  F1-macro {metrics['f1_macro']:.3f}  "
        f"F1-macro(eq. 11) {metrics['f1_macro_eq11']:.3f}  LRAP {metrics['lrap']:.3f}  "
        f"at threshold {metrics['threshold']:.2f} ({metrics['threshold_from']}; protocol "
        f"{args.protocol})"
    )
    if "single_label" in metrics:
        print(f"single predominant accuracy {100 * metrics['single_label']['accuracy']:.1f} %")
    print(f"results in {args.out}")
    return 0
