"""Published top-1 accuracy (%) on the Rare Species benchmark: species level, 400 classes.

From the Rare Species data-set card (``imageomics/rare-species``; ViT-B/16 image encoders;
CLIP and OpenCLIP prompted with common names, BioCLIP with the taxonomic and common name;
few-shot: nearest class centroid of L2-normalised image embeddings, k images per species)
and the BioCLIP 2 model card (``imageomics/bioclip-2``, ViT-L/14, zero-shot only). Random
guessing: 0.25 % (1 in 400). The rare species were held out of BioCLIP's training data.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "Rare Species data-set card (BioCLIP), BioCLIP 2 model card"
TARGET = "species"


@dataclass(frozen=True)
class Published:
    label: str
    model: str  # open_clip architecture or hf-hub id, as model.net.name takes it
    pretrained: str | None  # the weights tag (a prefix of it), None for hf-hub ids
    zeroshot: float | None
    one_shot: float | None
    five_shot: float | None

    def accuracy(self, method: str, shots: int | None = None) -> float | None:
        if method == "zeroshot":
            return self.zeroshot
        if method == "fewshot":
            return {1: self.one_shot, 5: self.five_shot}.get(shots)
        return None


PUBLISHED: tuple[Published, ...] = (
    Published("CLIP ViT-B/16 (OpenAI)", "ViT-B-16", "openai", 31.81, 28.52, 46.07),
    # the card does not name OpenCLIP's weights; a BioCLIP evaluation script names
    # laion400m_e32, so runs with a laion400m tag are matched to this row (an assumption)
    Published("OpenCLIP ViT-B/16", "ViT-B-16", "laion400m", 29.85, 29.26, 47.45),
    Published("BioCLIP", "hf-hub:imageomics/bioclip", None, 38.09, 44.9, 65.7),
    Published("BioCLIP 2 (ViT-L/14)", "hf-hub:imageomics/bioclip-2", None, 76.8, None, None),
)


def published_for(model: str, pretrained: str | None) -> Published | None:
    """The published entry of an open_clip model (``-quickgelu`` variants included)."""
    name = model.removesuffix("-quickgelu")
    for entry in PUBLISHED:
        if name != entry.model:
            continue
        if entry.pretrained is None or (pretrained or "").startswith(entry.pretrained):
            return entry
    return None


def published_accuracy(
    method: str, shots: int | None, model: str, pretrained: str | None, target: str
) -> float | None:
    """The published top-1 % comparable to a run: same method, k, model and target rank."""
    if target != TARGET:
        return None
    entry = published_for(model, pretrained)
    return entry.accuracy(method, shots) if entry else None


def published_table() -> str:
    """The published numbers as a markdown table."""
    lines = [
        f"Published top-1 accuracy, %, {TARGET} level, 400 classes ({SOURCE}):",
        "",
        "| model | zero-shot | 1-shot | 5-shot |",
        "|---|---|---|---|",
    ]
    for entry in PUBLISHED:
        cells = [entry.zeroshot, entry.one_shot, entry.five_shot]
        lines.append(
            f"| {entry.label} | " + " | ".join("" if c is None else f"{c}" for c in cells) + " |"
        )
    return "\n".join(lines) + "\n"
