"""Zero-shot class prompts from the index's taxonomy, and the text classifier they make.

Each class is named in one or more forms: its plain name (``Dactyloidae``; a species as
``Anolis roosevelti`` when the index has ``sciName`` or ``genus``), and, when the index has
every rank column from ``kingdom`` down to the target rank, its taxonomic string as BioCLIP
was trained on it (``Animalia Chordata Reptilia Squamata Dactyloidae``). Every form goes into
every template of the ensemble (``a photo of {name}.``); a class's text embedding is the
mean of its L2-normalised prompt embeddings, normalised again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from src.data.schema import RANKS
from src.errors import ConfigError

log = logging.getLogger(__name__)
SCIENTIFIC_NAME = "sciName"  # the hub catalog's "Genus epithet", when the index has it
NAME_FORMS: tuple[str, ...] = ("name", "taxonomy")
PLACEHOLDER = "{name}"


def _capital(word: str) -> str:
    return word[:1].upper() + word[1:]


def species_name(row: Mapping[str, object]) -> str:
    """``Genus epithet`` from the ``genus`` and ``species`` columns (either form of species)."""
    genus, species = str(row["genus"]).strip(), str(row["species"]).strip()
    if species.lower().startswith(genus.lower() + " "):  # the column already holds the binomial
        return _capital(genus) + species[len(genus) :]
    return f"{_capital(genus)} {species}"


def plain_name(row: Mapping[str, object], target: str, class_name: str) -> str:
    """The class as a person would name it: a capitalised taxon, or a species binomial
    (``sciName``, else genus and species; an index with neither names species by page id)."""
    if target == "species":
        if _filled(row, SCIENTIFIC_NAME):
            return str(row[SCIENTIFIC_NAME]).strip()
        if _filled(row, "genus") and _filled(row, "species"):
            return species_name(row)
    return _capital(str(class_name))


def _filled(row: Mapping[str, object], column: str) -> bool:
    return column in row and not pd.isna(row[column]) and str(row[column]).strip() != ""


def taxonomic_name(row: Mapping[str, object], target: str) -> str | None:
    """``Animalia Chordata ... <target>``; None when a rank column down to ``target`` is missing."""
    if target not in RANKS:
        return None
    ranks = RANKS[: RANKS.index(target) + 1]
    if not all(_filled(row, rank) for rank in ranks):
        return None
    if target == "species":
        higher = " ".join(_capital(str(row[rank]).strip()) for rank in ranks[:-2])
        return f"{higher} {species_name(row)}"
    return " ".join(_capital(str(row[rank]).strip()) for rank in ranks)


def class_prompt_names(
    index: pd.DataFrame,
    labels: Sequence[int],
    class_names: Sequence[str],
    target: str,
    forms: Sequence[str] = NAME_FORMS,
) -> list[list[str]]:
    """Per class, the names its prompts use, read from its first row of ``index``.

    ``labels`` are the class indices of ``index``'s rows (the data module's ``labels_of``).
    A form the index cannot give (``taxonomy`` without the rank columns) is left out.
    """
    if not forms or any(form not in NAME_FORMS for form in forms):
        raise ConfigError(
            f"prompts.names={list(forms)} is not allowed: use one or more of "
            f"{', '.join(NAME_FORMS)}."
        )
    labels = np.asarray(labels)
    names: list[list[str]] = []
    for label, class_name in enumerate(class_names):
        rows = np.flatnonzero(labels == label)
        row = index.iloc[int(rows[0])].to_dict() if len(rows) else {}
        plain = plain_name(row, target, class_name)
        found = {"name": plain, "taxonomy": taxonomic_name(row, target)}
        chosen = [found[form] for form in forms if found[form]]
        names.append(list(dict.fromkeys(chosen)) or [plain])
    if "taxonomy" in forms and target in RANKS:
        missing = [r for r in RANKS[: RANKS.index(target) + 1] if r not in index.columns]
        if missing:
            log.info(
                "No taxonomic prompts: the index has no %s column(s); the prompts name the "
                "classes only.",
                ", ".join(missing),
            )
    return names


def class_prompts(names: Sequence[Sequence[str]], templates: Sequence[str]) -> list[list[str]]:
    """Every template with every name of a class: the prompt ensemble of each class."""
    bad = [t for t in templates if PLACEHOLDER not in t]
    if bad or not templates:
        raise ConfigError(
            f"prompts.templates must be a non-empty list of texts with {PLACEHOLDER} in each "
            f"(e.g. 'a photo of {PLACEHOLDER}.'); got {list(templates)}."
        )
    return [
        list(dict.fromkeys(t.replace(PLACEHOLDER, name) for name in class_names for t in templates))
        for class_names in names
    ]


@torch.no_grad()
def text_classifier(
    model, tokenizer, prompts: Sequence[Sequence[str]], device: str = "cpu", batch_size: int = 256
) -> torch.Tensor:
    """``(classes, D)``: per class the mean of its L2-normalised prompt embeddings, normalised."""
    flat = [prompt for class_prompts_ in prompts for prompt in class_prompts_]
    owner = torch.tensor([c for c, class_prompts_ in enumerate(prompts) for _ in class_prompts_])
    parts = []
    for start in range(0, len(flat), batch_size):
        tokens = tokenizer(flat[start : start + batch_size]).to(device)
        parts.append(model.encode_text(tokens).float().cpu())
    embeddings = torch.nn.functional.normalize(torch.cat(parts), dim=-1)
    sums = torch.zeros(len(prompts), embeddings.shape[1]).index_add_(0, owner, embeddings)
    return torch.nn.functional.normalize(sums / torch.bincount(owner)[:, None], dim=-1)
